"""ResNet-18 face emotion encoder, in plain torch.

The backbone has the ResNet-18 shape (BasicBlocks, depths 2-2-2-2, widths w-2w-4w-8w with
w = 64 for the real thing) and is written here rather than taken from ``transformers`` so that
building a detector does not pay the ``transformers`` import. Its parameters line up one to one
with a ``transformers`` ``ResNetModel`` of the same shape, so ImageNet weights such as
``microsoft/resnet-18`` can seed it through :func:`load_transformers_resnet_weights`.

Head: the final 7x7 feature map (for 224x224 input) becomes 49 tokens projected to
``embed_dim``; the embedding is their mean and the emotion head reads the embedding.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from mmdeepfake.encoders.base import EmotionEncoder, EncoderOutput, check_input, register_encoder
from mmdeepfake.errors import CheckpointError
from mmdeepfake.labels import NUM_EMOTIONS


class BasicBlock(nn.Module):
    """y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), 3x3 convolutions."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class ResNetBackbone(nn.Module):
    """Stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and four stages of BasicBlocks.

    Output: (B, 8w, H/32, W/32) feature map; ``out_channels`` = 8w for the default depths.
    """

    def __init__(self, width: int = 64, depths: Sequence[int] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        widths = [width * 2**i for i in range(len(depths))]
        stages = []
        in_channels = width
        for i, (depth, out_channels) in enumerate(zip(depths, widths, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(in_channels, out_channels, stride)]
            blocks += [BasicBlock(out_channels, out_channels) for _ in range(depth - 1)]
            stages.append(nn.Sequential(*blocks))
            in_channels = out_channels
        self.stages = nn.ModuleList(stages)
        self.out_channels = in_channels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_inference_mode_enabled():
            # Inference (Detector.predict runs under inference_mode) goes channels-last: about
            # 1.3x faster with oneDNN on CPU, and the layout cuDNN prefers; values agree to
            # float rounding (~1e-5). Not while training: oneDNN's channels-last backward
            # crashes for narrow widths (4 and 8) in torch 2.13.
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x


@register_encoder("resnet18")
class ResNetEmotionEncoder(EmotionEncoder):
    """Face crops (B, 3, 224, 224) -> tokens (B, 49, D), embedding (B, D), emotion logits.

    tokens = LayerNorm(W f_hw) over the cells of the last feature map f;
    embedding = mean_hw tokens; emotion_logits = U dropout(embedding) + b.
    ``width`` is the base width w (64 = ResNet-18; 16-24 make a small starter model).
    """

    modality = "image"

    def __init__(
        self,
        embed_dim: int = 256,
        width: int = 64,
        depths: Sequence[int] = (2, 2, 2, 2),
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.backbone = ResNetBackbone(width=width, depths=depths)
        self.proj = nn.Sequential(
            nn.Linear(self.backbone.out_channels, embed_dim), nn.LayerNorm(embed_dim)
        )
        self.emotion_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, NUM_EMOTIONS))

    def forward(self, inputs: torch.Tensor) -> EncoderOutput:
        check_input(inputs, 4, "face crops of shape (B, 3, H, W)")
        features = self.backbone(inputs)  # (B, C, h, w)
        tokens = self.proj(features.flatten(2).transpose(1, 2))  # (B, h*w, D)
        embedding = tokens.mean(dim=1)
        return EncoderOutput(embedding, tokens, self.emotion_head(embedding))


# transformers ResNetModel key -> this backbone's key (after an optional "resnet." prefix).
_KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^embedder\.embedder\.convolution\.", "stem.0."),
    (r"^embedder\.embedder\.normalization\.", "stem.1."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.0\.convolution\.", r"stages.\1.\2.conv1."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.0\.normalization\.", r"stages.\1.\2.bn1."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.1\.convolution\.", r"stages.\1.\2.conv2."),
    (r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.1\.normalization\.", r"stages.\1.\2.bn2."),
    (
        r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.",
        r"stages.\1.\2.downsample.0.",
    ),
    (
        r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.",
        r"stages.\1.\2.downsample.1.",
    ),
)


def convert_transformers_resnet_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Rename a transformers ``ResNetModel`` / ``ResNetForImageClassification`` state dict.

    The classifier of an ImageNet checkpoint is dropped (emotion heads are trained here).
    """
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("resnet.")
        if key.startswith("classifier."):
            continue
        for pattern, replacement in _KEY_RULES:
            new_key, hits = re.subn(pattern, replacement, key)
            if hits:
                converted[new_key] = value
                break
        else:
            raise CheckpointError(
                f"Unexpected key {key!r} in the ResNet checkpoint: it is not a basic-block "
                "ResNet from transformers. Use a ResNet-18/34-style checkpoint "
                "(layer_type='basic'), e.g. microsoft/resnet-18."
            )
    return converted


def load_transformers_resnet_weights(
    encoder: ResNetEmotionEncoder | ResNetBackbone, state_dict: Mapping[str, torch.Tensor]
) -> None:
    """Copy a transformers ResNet state dict (e.g. microsoft/resnet-18) into ``encoder``'s backbone.

    Only the backbone is loaded; projection and emotion head keep their initialisation. Raises
    CheckpointError when the checkpoint's shape (depths, widths) differs from the backbone's.
    """
    backbone = encoder.backbone if isinstance(encoder, ResNetEmotionEncoder) else encoder
    converted = convert_transformers_resnet_state_dict(state_dict)
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"The ResNet checkpoint does not match this backbone's depths: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}. Build the encoder with the checkpoint's depths."
        )
    for key, value in converted.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"The ResNet checkpoint has {key} of shape {tuple(value.shape)} but the backbone "
                f"expects {tuple(expected[key].shape)}: build the encoder with the checkpoint's "
                "width (64 for microsoft/resnet-18)."
            )
    backbone.load_state_dict(converted)
