"""Late fusion: each modality decides alone; the decisions are averaged."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from mmdeepfake.encoders.base import EncoderOutput
from mmdeepfake.errors import ConfigError
from mmdeepfake.fusion.base import Fusion, FusionOutput, register_fusion

Combine = Literal["logit", "prob"]


def combine_logits(logits: torch.Tensor, weights: torch.Tensor, combine: Combine) -> torch.Tensor:
    """Weighted combination of per-modality fake logits (B, M) with weights (B, M) summing to 1.

    "logit": sum_i w_i s_i (a weighted geometric mean of the odds).
    "prob":  logit(sum_i w_i sigmoid(s_i)), computed in log space so it stays finite.
    """
    if combine == "logit":
        return (weights * logits).sum(dim=-1)
    log_w = weights.clamp_min(1e-12).log()
    log_p = torch.logsumexp(log_w + F.logsigmoid(logits), dim=-1)
    log_not_p = torch.logsumexp(log_w + F.logsigmoid(-logits), dim=-1)
    return log_p - log_not_p


def check_combine(combine: str) -> Combine:
    if combine not in ("logit", "prob"):
        raise ConfigError(f"Unknown combine {combine!r}: use 'logit' or 'prob'.")
    return combine  # type: ignore[return-value]


@register_fusion("late")
class LateFusion(Fusion):
    """s_I = h_I(e_I), s_A = h_A(e_A) (one real/fake head per modality);
    ``combine="logit"`` (default): fake_logit = (s_I + s_A) / 2;
    ``combine="prob"``: fake_logit = logit((sigmoid(s_I) + sigmoid(s_A)) / 2).

    No cross-modal term: it can only catch fakes that one modality betrays on its own, which makes
    it the baseline that shows what emotional consistency adds. ``weights`` is None (fixed 1/2).
    """

    def __init__(
        self,
        image_dim: int,
        audio_dim: int,
        hidden: int = 128,
        dropout: float = 0.1,
        combine: Combine = "logit",
    ) -> None:
        super().__init__(image_dim, audio_dim, hidden, dropout)
        self.combine = check_combine(combine)

    def forward(self, image: EncoderOutput, audio: EncoderOutput) -> FusionOutput:
        scores = self.unimodal_logits(image, audio)
        logits = torch.stack([scores["image"], scores["audio"]], dim=-1)
        weights = torch.full_like(logits, 1.0 / logits.shape[-1])
        return FusionOutput(combine_logits(logits, weights, self.combine), scores)
