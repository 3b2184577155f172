"""What every encoder returns, and the base class encoders derive from.

An encoder maps one modality (face crops or voice waveforms) to three things the fusion
strategies consume: a pooled embedding, a token sequence (spatial cells or time steps) for
strategies that look inside a modality, and logits over :data:`mmdeepfake.labels.EMOTIONS`
from which the emotion distribution and the face/voice consistency are computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from mmdeepfake.labels import NUM_EMOTIONS
from mmdeepfake.media.faces import FACE_MARGIN
from mmdeepfake.registry import Registry

Modality = Literal["image", "audio"]


@dataclass
class EncoderOutput:
    """One encoder's view of a batch.

    embedding: (B, D) pooled representation.
    tokens: (B, T, D) per-cell (image) or per-time-step (audio) representations.
    emotion_logits: (B, NUM_EMOTIONS) unnormalised scores over ``EMOTIONS``.
    """

    embedding: torch.Tensor
    tokens: torch.Tensor
    emotion_logits: torch.Tensor

    def __len__(self) -> int:
        return self.embedding.shape[0]

    def pool(self, groups: Sequence[Sequence[int]]) -> EncoderOutput:
        """Average rows per group: row g of the result is the mean of rows ``groups[g]``.

        Used to merge several face frames that fall in one time segment into one face view of
        that segment. Emotion *logits* are averaged, which makes the pooled distribution the
        normalised geometric mean of the frame distributions (frames that agree reinforce).
        """
        if not groups:
            raise ValueError("pool() needs at least one group of row indices")
        n = len(self)
        rows = []
        for group in groups:
            idx = list(group)
            if not idx:
                raise ValueError("pool() got an empty group; every group needs at least one row")
            if min(idx) < -n or max(idx) >= n:
                raise IndexError(f"pool() group {idx} indexes outside a batch of {n} rows")
            rows.append(idx)
        # A (G, B) averaging matrix keeps this one differentiable matmul per field.
        weights = torch.zeros(
            len(rows), n, dtype=self.embedding.dtype, device=self.embedding.device
        )
        for g, idx in enumerate(rows):
            for i in idx:
                weights[g, i % n] += 1.0 / len(idx)
        return EncoderOutput(
            embedding=weights @ self.embedding,
            tokens=torch.einsum("gb,btd->gtd", weights, self.tokens),
            emotion_logits=weights @ self.emotion_logits,
        )


class EmotionEncoder(nn.Module):
    """Base class: one modality in, :class:`EncoderOutput` out.

    Subclasses set ``modality`` and ``embed_dim`` (the width D of embedding and tokens) and
    implement ``forward``. Image encoders take (B, 3, 224, 224) ImageNet-normalised crops;
    audio encoders take (B, S) waveforms at 16 kHz (normally S = ``WINDOW_SAMPLES``).

    ``face_margin`` is the framing an image encoder expects (the crop is a square
    ``1 + face_margin`` times the detector box's longer side); the pipeline crops faces with
    it, because the framing a pretrained face model learned is part of its preprocessing and
    cannot be recovered from a tighter crop.

    ``fixed_input_stats`` is True for an image encoder that undoes the crops' normalisation
    itself with the default ImageNet statistics, so a detector refuses other ones
    (``PreprocessConfig.image_mean`` / ``image_std``).
    """

    modality: ClassVar[Modality]
    embed_dim: int
    num_emotions: int = NUM_EMOTIONS
    face_margin: ClassVar[float] = FACE_MARGIN
    fixed_input_stats: ClassVar[bool] = False

    def forward(self, inputs: torch.Tensor) -> EncoderOutput:  # pragma: no cover - abstract
        raise NotImplementedError


def check_input(inputs: torch.Tensor, ndim: int, what: str) -> None:
    """Raise a ValueError naming the expected layout when a tensor has the wrong rank."""
    if inputs.ndim != ndim:
        raise ValueError(f"expected {what}, got a tensor of shape {tuple(inputs.shape)}")


class AttentivePool(nn.Module):
    """Attention pooling over tokens: w = softmax(v . tanh(W x_t)); out = sum_t w_t x_t.

    Lets an encoder weight the informative frames/cells (a loud stressed syllable, the mouth
    region) more than silence or background, instead of a plain mean.
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim
        self.score = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(tokens).squeeze(-1), dim=-1)
        return torch.einsum("bt,btd->bd", weights, tokens)


ENCODERS: Registry[EmotionEncoder] = Registry("encoder")
register_encoder = ENCODERS.register


def create_encoder(name: str, **kwargs: Any) -> EmotionEncoder:
    """Build the encoder registered as ``name`` (ConfigError listing the names if unknown)."""
    return ENCODERS.create(name, **kwargs)
