"""What a fusion strategy returns, the base class, and the strategy registry.

Every strategy also owns two auxiliary unimodal heads, s_image = h_I(e_I) and
s_audio = h_A(e_A), that score real/fake from one modality alone. Late and adaptive fusion
decide with them; the other strategies train them as auxiliary outputs. Either way
``modality_logits`` is always filled, so reports can show which modality looks fake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmdeepfake.encoders.base import EncoderOutput
from mmdeepfake.registry import Registry

MODALITIES: tuple[str, str] = ("image", "audio")


@dataclass
class FusionOutput:
    """fake_logit (B,): logit of P(fake); modality_logits: {"image": (B,), "audio": (B,)};
    weights (B, 2) [image, audio] where the strategy weighs the modalities, else None."""

    fake_logit: torch.Tensor
    modality_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    weights: torch.Tensor | None = None


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """LayerNorm -> Linear -> GELU -> Dropout -> Linear: the classifier shape used throughout."""
    return nn.Sequential(
        nn.LayerNorm(in_dim),
        nn.Linear(in_dim, hidden),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, out_dim),
    )


class Fusion(nn.Module):
    """Base class: ``forward(image, audio) -> FusionOutput`` with unimodal heads built in."""

    def __init__(
        self, image_dim: int, audio_dim: int, hidden: int = 128, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.image_dim, self.audio_dim, self.hidden = image_dim, audio_dim, hidden
        self.image_head = mlp(image_dim, hidden, 1, dropout)
        self.audio_head = mlp(audio_dim, hidden, 1, dropout)

    def unimodal_logits(
        self, image: EncoderOutput, audio: EncoderOutput
    ) -> dict[str, torch.Tensor]:
        """{"image": h_I(e_I), "audio": h_A(e_A)}, each (B,)."""
        return {
            "image": self.image_head(image.embedding).squeeze(-1),
            "audio": self.audio_head(audio.embedding).squeeze(-1),
        }

    def forward(
        self, image: EncoderOutput, audio: EncoderOutput
    ) -> FusionOutput:  # pragma: no cover
        raise NotImplementedError


FUSIONS: Registry[Fusion] = Registry("fusion strategy")
register_fusion = FUSIONS.register


def create_fusion(name: str, *, image_dim: int, audio_dim: int, **kwargs: Any) -> Fusion:
    """Build the fusion strategy registered as ``name`` for the given embedding widths."""
    return FUSIONS.create(name, image_dim=image_dim, audio_dim=audio_dim, **kwargs)
