"""Early fusion: one joint network over both modalities' token sequences."""

from __future__ import annotations

import torch
from torch import nn

from mmdeepfake.encoders.base import EncoderOutput
from mmdeepfake.fusion.base import Fusion, FusionOutput, mlp, register_fusion


@register_fusion("early")
class EarlyFusion(Fusion):
    """x = [c; W_I t^I_1 + m_I, ..., W_I t^I_n + m_I; W_A t^A_1 + m_A, ..., W_A t^A_k + m_A]
    z = TransformerEncoder(x)[0];  fake_logit = MLP(z).

    t^I are the face encoder's spatial tokens, t^A the voice encoder's time tokens, m_I / m_A
    learned modality embeddings and c a learned [CLS] token: self-attention mixes low-level face
    and voice evidence from the first layer on. Tokens carry no extra position code (their
    encoders already give them spatial/temporal context). ``layers`` and ``heads`` size it.
    """

    def __init__(
        self,
        image_dim: int,
        audio_dim: int,
        hidden: int = 128,
        dropout: float = 0.1,
        layers: int = 2,
        heads: int = 4,
    ) -> None:
        super().__init__(image_dim, audio_dim, hidden, dropout)
        self.image_proj = nn.Linear(image_dim, hidden)
        self.audio_proj = nn.Linear(audio_dim, hidden)
        self.modality_embedding = nn.Parameter(torch.zeros(2, hidden))
        self.cls = nn.Parameter(torch.zeros(1, 1, hidden))
        nn.init.normal_(self.modality_embedding, std=0.02)
        nn.init.normal_(self.cls, std=0.02)
        layer = nn.TransformerEncoderLayer(
            hidden,
            heads,
            dim_feedforward=2 * hidden,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.classifier = mlp(hidden, hidden, 1, dropout)

    def forward(self, image: EncoderOutput, audio: EncoderOutput) -> FusionOutput:
        face = self.image_proj(image.tokens) + self.modality_embedding[0]
        voice = self.audio_proj(audio.tokens) + self.modality_embedding[1]
        x = torch.cat([self.cls.expand(face.shape[0], -1, -1), face, voice], dim=1)
        z = self.encoder(x)[:, 0]
        return FusionOutput(self.classifier(z).squeeze(-1), self.unimodal_logits(image, audio))
