"""Mid fusion: embeddings, emotion distributions and explicit consistency features."""

from __future__ import annotations

import torch
from torch import nn

from mmdeepfake.encoders.base import EncoderOutput
from mmdeepfake.fusion.base import Fusion, FusionOutput, mlp, register_fusion
from mmdeepfake.fusion.consistency import LN2, embedding_cosine, js_divergence_from_logits
from mmdeepfake.labels import NUM_EMOTIONS


@register_fusion("mid")
class MidFusion(Fusion):
    """z_I = W_I LN(e_I), z_A = W_A LN(e_A) (a shared space of width ``hidden``);
    p_f = softmax(face emotion logits), p_v = softmax(voice emotion logits);
    x = [z_I; z_A; p_f; p_v; |p_f - p_v|; JSD(p_f, p_v) / ln 2; cos(z_I, z_A)];
    fake_logit = MLP(x).

    The classifier sees the agreement of the two emotion distributions directly rather than
    having to learn a divergence from raw embeddings, which is what lets a small model detect
    a face and a voice that express different emotions.
    """

    def __init__(
        self, image_dim: int, audio_dim: int, hidden: int = 128, dropout: float = 0.1
    ) -> None:
        super().__init__(image_dim, audio_dim, hidden, dropout)
        self.image_proj = nn.Sequential(nn.LayerNorm(image_dim), nn.Linear(image_dim, hidden))
        self.audio_proj = nn.Sequential(nn.LayerNorm(audio_dim), nn.Linear(audio_dim, hidden))
        self.classifier = mlp(2 * hidden + 3 * NUM_EMOTIONS + 2, hidden, 1, dropout)

    def forward(self, image: EncoderOutput, audio: EncoderOutput) -> FusionOutput:
        z_face = self.image_proj(image.embedding)
        z_voice = self.audio_proj(audio.embedding)
        p_face = image.emotion_logits.softmax(dim=-1)
        p_voice = audio.emotion_logits.softmax(dim=-1)
        jsd = js_divergence_from_logits(image.emotion_logits, audio.emotion_logits) / LN2
        cosine = embedding_cosine(z_face, z_voice)
        x = torch.cat(
            [
                z_face,
                z_voice,
                p_face,
                p_voice,
                (p_face - p_voice).abs(),
                jsd[:, None],
                cosine[:, None],
            ],
            dim=-1,
        )
        return FusionOutput(self.classifier(x).squeeze(-1), self.unimodal_logits(image, audio))
