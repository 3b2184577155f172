"""Adaptive late fusion: per-sample modality weights from each modality's confidence."""

from __future__ import annotations

from typing import Literal

import torch

from mmdeepfake.encoders.base import EncoderOutput
from mmdeepfake.errors import ConfigError
from mmdeepfake.fusion.base import Fusion, FusionOutput, register_fusion
from mmdeepfake.fusion.late import Combine, check_combine, combine_logits


@register_fusion("adaptive")
class AdaptiveFusion(Fusion):
    """s_i = h_i(e_i) for i in {image, audio};
    r_i = max class probability of modality i:
      ``confidence="detection"`` (default): r_i = max(sigmoid(s_i), 1 - sigmoid(s_i));
      ``confidence="emotion"``: r_i = max_k softmax(emotion logits of i)_k;
    alpha = softmax(tau * r) over the two modalities;
    fake_logit = sum_i alpha_i s_i (``combine="logit"``) or logit(sum_i alpha_i sigmoid(s_i)).

    A modality that is unsure (a blurry face, a noisy voice) hands the decision to the other.
    ``tau`` (default 5) sets how sharply; tau = 0 is late fusion. ``weights`` = alpha (B, 2).
    """

    def __init__(
        self,
        image_dim: int,
        audio_dim: int,
        hidden: int = 128,
        dropout: float = 0.1,
        tau: float = 5.0,
        confidence: Literal["detection", "emotion"] = "detection",
        combine: Combine = "logit",
    ) -> None:
        super().__init__(image_dim, audio_dim, hidden, dropout)
        if confidence not in ("detection", "emotion"):
            raise ConfigError(f"Unknown confidence {confidence!r}: use 'detection' or 'emotion'.")
        self.tau = float(tau)
        self.confidence = confidence
        self.combine = check_combine(combine)

    def forward(self, image: EncoderOutput, audio: EncoderOutput) -> FusionOutput:
        scores = self.unimodal_logits(image, audio)
        logits = torch.stack([scores["image"], scores["audio"]], dim=-1)
        if self.confidence == "detection":
            reliability = torch.sigmoid(logits.abs())
        else:
            reliability = torch.stack(
                [
                    image.emotion_logits.softmax(-1).amax(-1),
                    audio.emotion_logits.softmax(-1).amax(-1),
                ],
                dim=-1,
            )
        alpha = torch.softmax(self.tau * reliability, dim=-1)
        return FusionOutput(combine_logits(logits, alpha, self.combine), scores, alpha)
