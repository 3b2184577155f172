"""Wrap any Hugging Face image or audio classification model as an emotion encoder.

Users with hub access can plug in a pretrained emotion model by id (a facial-expression ViT, a
wav2vec2 speech-emotion model) instead of training one. ``transformers`` is imported only when
one of these encoders is built, so the rest of the library never pays for it.

Emotion logits: the model's own labels are matched to :data:`~mmdeepfake.labels.EMOTIONS` by
name (with common aliases, see :data:`LABEL_ALIASES`). For an emotion with matching labels,
base_e = logsumexp of their logits (the model's probability mass for it); emotions without a
match get base_e = min(mapped bases) - 6, i.e. start about e^-6 times less likely than the least
likely matched emotion. A linear head on the embedding, initialised to zero, is added to base,
so the output starts as the pretrained model's mapped distribution and training can correct it.
When no label matches (a generic ImageNet model), the head alone produces the emotion logits.

Embedding and tokens come from the model's last hidden state (spatial maps are flattened into
tokens), projected to ``embed_dim``.

Pretrained weights are read from safetensors only (``use_safetensors=True``); a model that
offers only ``pytorch_model.bin`` (a pickle) is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mmdeepfake.encoders.base import EmotionEncoder, EncoderOutput, check_input, register_encoder
from mmdeepfake.errors import CheckpointError, ConfigError
from mmdeepfake.labels import EMOTION_INDEX, EMOTIONS, NUM_EMOTIONS
from mmdeepfake.media.features import IMAGE_MEAN, IMAGE_STD

LABEL_ALIASES: dict[str, str] = {
    **{name: name for name in EMOTIONS},
    "neu": "neutral",
    "calm": "neutral",
    "hap": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "ang": "angry",
    "anger": "angry",
    "fear": "fearful",
    "fea": "fearful",
    "disgust": "disgusted",
    "dis": "disgusted",
    "surprise": "surprised",
    "sur": "surprised",
}
UNMAPPED_OFFSET = 6.0
# The statistics the pipeline normalises crops with, undone before the model's own.
IMAGENET_MEAN = IMAGE_MEAN
IMAGENET_STD = IMAGE_STD


def map_labels_to_emotions(id2label: Mapping[int | str, str]) -> dict[int, int]:
    """{model label index: EMOTIONS index} for the labels whose name matches an emotion."""
    mapping = {}
    for index, label in id2label.items():
        key = re.sub(r"[^a-z]", "", str(label).lower())
        emotion = LABEL_ALIASES.get(key)
        if emotion is not None:
            mapping[int(index)] = EMOTION_INDEX[emotion]
    return mapping


def _build_model(
    auto_class: str,
    model_id: str | None,
    config: Mapping[str, Any] | None,
    pretrained: bool,
    revision: str | None,
) -> nn.Module:
    """Instantiate a transformers model from the hub (by id) or offline from a config dict."""
    import transformers

    auto = getattr(transformers, auto_class)
    if config is not None:
        if "model_type" not in config:
            raise ConfigError(
                "An hf encoder 'config' needs a 'model_type' key, e.g. 'vit' or 'wav2vec2'."
            )
        settings = dict(config)
        hf_config = transformers.AutoConfig.for_model(settings.pop("model_type"), **settings)
        return auto.from_config(hf_config)
    if not model_id:
        raise ConfigError(
            "An hf encoder needs a 'model_id' (hub id or local folder) or a 'config' dict."
        )
    try:
        if pretrained:
            # Weights only ever come from safetensors: a pytorch_model.bin is a pickle, and
            # unpickling runs whatever code the file names.
            return auto.from_pretrained(model_id, revision=revision, use_safetensors=True)
        return auto.from_config(
            transformers.AutoConfig.from_pretrained(model_id, revision=revision)
        )
    except (OSError, ValueError) as err:
        raise CheckpointError(
            f"Could not load {model_id!r} as {auto_class}: {err}. Check the id or folder, that the "
            "Hugging Face Hub is reachable (HF_HUB_OFFLINE unset), and that the model is a "
            "classification model of the right modality."
        ) from err


class _HFEncoder(EmotionEncoder):
    """Shared logic: hidden state -> tokens/embedding; model labels -> emotion logits."""

    auto_class: str

    def __init__(
        self,
        model_id: str | None,
        config: Mapping[str, Any] | None,
        pretrained: bool,
        revision: str | None,
        embed_dim: int,
        dropout: float,
        freeze_backbone: bool,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.model = _build_model(self.auto_class, model_id, config, pretrained, revision)
        if freeze_backbone:
            self.model.requires_grad_(False)
        self._setup_inputs(model_id, config)
        hidden_dim, num_labels = self._probe()
        self.proj = nn.Sequential(nn.Linear(hidden_dim, embed_dim), nn.LayerNorm(embed_dim))
        self.emotion_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, NUM_EMOTIONS))
        mapping = map_labels_to_emotions(self.model.config.id2label)
        self.mapped_emotions = sorted(set(mapping.values()))
        label_mask = torch.zeros(len(self.mapped_emotions), num_labels, dtype=torch.bool)
        for label, emotion in mapping.items():
            label_mask[self.mapped_emotions.index(emotion), label] = True
        self.register_buffer("label_mask", label_mask, persistent=False)
        if self.mapped_emotions:
            nn.init.zeros_(self.emotion_head[1].weight)
            nn.init.zeros_(self.emotion_head[1].bias)

    def _setup_inputs(self, model_id: str | None, config: Mapping[str, Any] | None) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def _model_inputs(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError  # pragma: no cover - abstract

    def _example(self) -> torch.Tensor:
        raise NotImplementedError  # pragma: no cover - abstract

    @torch.no_grad()
    def _probe(self) -> tuple[int, int]:
        """Run one dummy input to learn the hidden width and the number of model labels."""
        was_training = self.model.training
        self.model.eval()
        hidden, logits = self._run(self._example())
        self.model.train(was_training)
        return hidden.shape[-1], logits.shape[-1]

    def _run(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(**self._model_inputs(inputs), output_hidden_states=True)
        hidden = out.hidden_states[-1]
        if hidden.ndim == 4:  # convolutional map (B, C, h, w) -> tokens (B, h*w, C)
            hidden = hidden.flatten(2).transpose(1, 2)
        return hidden, out.logits

    def forward(self, inputs: torch.Tensor) -> EncoderOutput:
        hidden, logits = self._run(inputs)
        tokens = self.proj(hidden)
        embedding = tokens.mean(dim=1)
        emotion_logits = self.emotion_head(embedding)
        if self.mapped_emotions:
            masked = logits.unsqueeze(1).masked_fill(~self.label_mask, float("-inf"))
            mapped = torch.logsumexp(masked, dim=-1)  # (B, mapped emotions)
            floor = mapped.min(dim=-1, keepdim=True).values - UNMAPPED_OFFSET
            base = floor.expand(-1, NUM_EMOTIONS).clone()
            base[:, self.mapped_emotions] = mapped
            emotion_logits = emotion_logits + base
        return EncoderOutput(embedding, tokens, emotion_logits)


@register_encoder("hf_image")
class HFImageEmotionEncoder(_HFEncoder):
    """Any ``AutoModelForImageClassification`` over face crops (B, 3, 224, 224).

    Crops arrive ImageNet-normalised; they are re-normalised to the model's own mean/std and
    resized to its input size (read from its image processor when loading from the hub, else
    from ``image_mean``/``image_std``/``image_size`` or the model config).
    ``config`` builds an untrained model offline, e.g. ``{"model_type": "vit", ...}``.
    """

    modality = "image"
    auto_class = "AutoModelForImageClassification"
    fixed_input_stats = True  # re-normalised from the ImageNet statistics

    def __init__(
        self,
        model_id: str | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        pretrained: bool = True,
        revision: str | None = None,
        embed_dim: int = 256,
        dropout: float = 0.1,
        freeze_backbone: bool = False,
        image_mean: tuple[float, float, float] | None = None,
        image_std: tuple[float, float, float] | None = None,
        image_size: int | None = None,
    ) -> None:
        self._requested = (image_mean, image_std, image_size)
        super().__init__(
            model_id, config, pretrained, revision, embed_dim, dropout, freeze_backbone
        )

    def _setup_inputs(self, model_id: str | None, config: Mapping[str, Any] | None) -> None:
        mean, std, size = self._requested
        if model_id and config is None and (mean is None or std is None or size is None):
            from transformers import AutoImageProcessor

            try:
                processor = AutoImageProcessor.from_pretrained(model_id)
            except (OSError, ValueError):
                processor = None  # models without a processor file keep the defaults below
            if processor is not None:
                mean = mean or getattr(processor, "image_mean", None)
                std = std or getattr(processor, "image_std", None)
                proc_size = getattr(processor, "size", None) or {}
                size = size or proc_size.get("height") or proc_size.get("shortest_edge")
        cfg_size = getattr(self.model.config, "image_size", None)
        self.image_size = int(size or (cfg_size if isinstance(cfg_size, int) else 224))
        scale = torch.tensor(IMAGENET_STD) / torch.tensor(std or IMAGENET_STD)
        shift = (torch.tensor(IMAGENET_MEAN) - torch.tensor(mean or IMAGENET_MEAN)) / torch.tensor(
            std or IMAGENET_STD
        )
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)

    def _example(self) -> torch.Tensor:
        return torch.zeros(1, 3, self.image_size, self.image_size)

    def _model_inputs(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(inputs, 4, "face crops of shape (B, 3, H, W)")
        pixels = inputs * self.scale + self.shift
        if pixels.shape[-1] != self.image_size or pixels.shape[-2] != self.image_size:
            pixels = nn.functional.interpolate(
                pixels,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
            )
        return {"pixel_values": pixels}


@register_encoder("hf_audio")
class HFAudioEmotionEncoder(_HFEncoder):
    """Any ``AutoModelForAudioClassification`` over waveform windows (B, S) at 16 kHz.

    Loaded by id, the model's own feature extractor prepares its inputs (so spectrogram models
    such as AST work too). Built offline from ``config``, the model must take raw waveforms
    (wav2vec2, HuBERT, WavLM, ...): each window is normalised to zero mean and unit variance,
    the wav2vec2 convention.
    """

    modality = "audio"
    auto_class = "AutoModelForAudioClassification"
    sample_rate = 16000

    def __init__(
        self,
        model_id: str | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        pretrained: bool = True,
        revision: str | None = None,
        embed_dim: int = 256,
        dropout: float = 0.1,
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__(
            model_id, config, pretrained, revision, embed_dim, dropout, freeze_backbone
        )

    def _setup_inputs(self, model_id: str | None, config: Mapping[str, Any] | None) -> None:
        self.feature_extractor = None
        if model_id and config is None:
            from transformers import AutoFeatureExtractor

            try:
                self.feature_extractor = AutoFeatureExtractor.from_pretrained(model_id)
            except (OSError, ValueError) as err:
                raise CheckpointError(
                    f"Could not load the feature extractor of {model_id!r}: {err}. Check that the "
                    "Hugging Face Hub is reachable or that the folder has preprocessor_config.json."
                ) from err

    def _example(self) -> torch.Tensor:
        return torch.randn(1, self.sample_rate, generator=torch.Generator().manual_seed(0)) * 0.1

    def _model_inputs(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        check_input(inputs, 2, "waveform windows of shape (B, samples) at 16 kHz")
        if self.feature_extractor is not None:
            features = self.feature_extractor(
                [w.detach().cpu().float().numpy() for w in inputs],
                sampling_rate=self.sample_rate,
                return_tensors="pt",
            )
            return {k: v.to(inputs.device) for k, v in features.items()}
        centred = inputs - inputs.mean(dim=-1, keepdim=True)
        return {"input_values": centred / (centred.std(dim=-1, keepdim=True) + 1e-7)}
