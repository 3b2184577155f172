"""The detector network: a face encoder, a voice encoder and a fusion strategy.

Both encoders always produce emotion logits, and the model always reports the consistency of
the two emotion distributions, 1 - JSD(p_face, p_voice) / ln 2, whatever the fusion strategy:
it is the explanation shown to users even when the strategy does not use it directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmdeepfake.domain import DomainGuard
from mmdeepfake.encoders import EncoderOutput, create_encoder
from mmdeepfake.errors import ConfigError
from mmdeepfake.fusion import consistency_from_logits, create_fusion


@dataclass
class ModelOutput:
    """fake_logit (B,); face/voice_emotion_logits (B, 7); consistency (B,) in [0, 1];
    modality_logits {"image": (B,), "audio": (B,)} per-modality fake logits;
    fusion_weights (B, 2) [image, audio] or None."""

    fake_logit: torch.Tensor
    face_emotion_logits: torch.Tensor
    voice_emotion_logits: torch.Tensor
    consistency: torch.Tensor
    modality_logits: dict[str, torch.Tensor] = field(default_factory=dict)
    fusion_weights: torch.Tensor | None = None

    @property
    def fake_probability(self) -> torch.Tensor:
        return torch.sigmoid(self.fake_logit)

    @property
    def face_emotions(self) -> torch.Tensor:
        return self.face_emotion_logits.softmax(dim=-1)

    @property
    def voice_emotions(self) -> torch.Tensor:
        return self.voice_emotion_logits.softmax(dim=-1)


class EmotionConsistencyModel(nn.Module):
    """Face crops (B, 3, 224, 224) + voice windows (B, S) -> :class:`ModelOutput`.

    ``embed_dim`` and ``dropout`` go to both encoders unless their kwargs override them; the
    fusion strategy is built for the encoders' actual embedding widths. ``config`` holds the
    constructor arguments (JSON-serialisable when the kwargs are), enough to rebuild the model.
    """

    def __init__(
        self,
        image_encoder: str = "resnet18",
        audio_encoder: str = "cnn_lstm",
        fusion: str = "mid",
        image_encoder_kwargs: Mapping[str, Any] | None = None,
        audio_encoder_kwargs: Mapping[str, Any] | None = None,
        fusion_kwargs: Mapping[str, Any] | None = None,
        embed_dim: int = 256,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "image_encoder": image_encoder,
            "audio_encoder": audio_encoder,
            "fusion": fusion,
            "image_encoder_kwargs": dict(image_encoder_kwargs or {}),
            "audio_encoder_kwargs": dict(audio_encoder_kwargs or {}),
            "fusion_kwargs": dict(fusion_kwargs or {}),
            "embed_dim": embed_dim,
            "dropout": dropout,
        }
        shared = {"embed_dim": embed_dim, "dropout": dropout}
        self.image_encoder = create_encoder(
            image_encoder, **{**shared, **self.config["image_encoder_kwargs"]}
        )
        self.audio_encoder = create_encoder(
            audio_encoder, **{**shared, **self.config["audio_encoder_kwargs"]}
        )
        for role, encoder, modality in (
            ("image", self.image_encoder, "image"),
            ("audio", self.audio_encoder, "audio"),
        ):
            if encoder.modality != modality:
                raise ConfigError(
                    f"{role}_encoder {self.config[role + '_encoder']!r} encodes "
                    f"{encoder.modality}, not {modality}: pick a {modality} encoder."
                )
        self.fusion = create_fusion(
            fusion,
            image_dim=self.image_encoder.embed_dim,
            audio_dim=self.audio_encoder.embed_dim,
            **{"dropout": dropout, **self.config["fusion_kwargs"]},
        )
        # Empty until fitted at the end of training (or by scripts/fit_domain_guard.py); its
        # buffers travel in model.safetensors with the weights.
        self.domain_guard = DomainGuard()

    @property
    def fusion_name(self) -> str:
        return self.config["fusion"]

    def encode_image(self, faces: torch.Tensor) -> EncoderOutput:
        """Face crops (N, 3, 224, 224), ImageNet-normalised -> EncoderOutput of N rows."""
        return self.image_encoder(faces)

    def encode_audio(self, waves: torch.Tensor) -> EncoderOutput:
        """Waveform windows (N, S) at 16 kHz -> EncoderOutput of N rows."""
        return self.audio_encoder(waves)

    def head_logit(self, modality: str, embedding: torch.Tensor) -> torch.Tensor:
        """The fusion strategy's unimodal real/fake head h_m(e_m): (N, D) -> (N,) logits.

        Used alone when only one modality is available; every strategy trains these heads.
        """
        head = {"image": self.fusion.image_head, "audio": self.fusion.audio_head}[modality]
        return head(embedding).squeeze(-1)

    def fuse(self, image_out: EncoderOutput, audio_out: EncoderOutput) -> ModelOutput:
        """Pair row i of the face view with row i of the voice view and score each pair."""
        if len(image_out) != len(audio_out):
            raise ValueError(
                f"fuse() needs as many face rows as voice rows, got {len(image_out)} and "
                f"{len(audio_out)}; pool or repeat one side (EncoderOutput.pool) first"
            )
        fused = self.fusion(image_out, audio_out)
        return ModelOutput(
            fake_logit=fused.fake_logit,
            face_emotion_logits=image_out.emotion_logits,
            voice_emotion_logits=audio_out.emotion_logits,
            consistency=consistency_from_logits(image_out.emotion_logits, audio_out.emotion_logits),
            modality_logits=fused.modality_logits,
            fusion_weights=fused.weights,
        )

    def forward(
        self,
        faces: torch.Tensor,
        waves: torch.Tensor,
        face_groups: Sequence[Sequence[int]] | None = None,
    ) -> ModelOutput:
        """Score B (face, voice) pairs. With ``face_groups`` (one list of face-row indices per
        voice window), the faces in each group are averaged into that window's face view."""
        image_out = self.encode_image(faces)
        if face_groups is not None:
            image_out = image_out.pool(face_groups)
        return self.fuse(image_out, self.encode_audio(waves))
