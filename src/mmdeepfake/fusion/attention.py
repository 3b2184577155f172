"""Attention fusion: face tokens attend to voice tokens and voice tokens to face tokens."""

from __future__ import annotations

import torch
from torch import nn

from mmdeepfake.encoders.base import AttentivePool, EncoderOutput
from mmdeepfake.fusion.base import Fusion, FusionOutput, mlp, register_fusion


class CrossBlock(nn.Module):
    """x' = x + MHA(LN(x), LN(y), LN(y)); x'' = x' + FFN(LN(x')) (pre-norm cross-attention)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = mlp(dim, 2 * dim, dim, dropout)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        kv = self.norm_kv(y)
        x = x + self.attn(self.norm_q(x), kv, kv, need_weights=False)[0]
        return x + self.ffn(x)


@register_fusion("attention")
class AttentionFusion(Fusion):
    """F = W_I t^I (face tokens), V = W_A t^A (voice tokens), width ``hidden``;
    F' = CrossBlock(F, V): each face cell gathers the voice evidence that matches it;
    V' = CrossBlock(V, F): each voice step gathers the face evidence that matches it;
    w = softmax(v . tanh(U [F'; V'])) over all face and voice tokens; g = sum_t w_t [F'; V']_t;
    fake_logit = MLP([g; mean F'; mean V']).

    ``weights`` (B, 2) = (sum of w over face tokens, sum over voice tokens): how much the pooled
    evidence was drawn from each modality.
    """

    def __init__(
        self,
        image_dim: int,
        audio_dim: int,
        hidden: int = 128,
        dropout: float = 0.1,
        heads: int = 4,
    ) -> None:
        super().__init__(image_dim, audio_dim, hidden, dropout)
        self.image_proj = nn.Linear(image_dim, hidden)
        self.audio_proj = nn.Linear(audio_dim, hidden)
        self.face_to_voice = CrossBlock(hidden, heads, dropout)
        self.voice_to_face = CrossBlock(hidden, heads, dropout)
        self.pool = AttentivePool(hidden, hidden // 2)
        self.classifier = mlp(3 * hidden, hidden, 1, dropout)

    def forward(self, image: EncoderOutput, audio: EncoderOutput) -> FusionOutput:
        face = self.image_proj(image.tokens)
        voice = self.audio_proj(audio.tokens)
        face_ctx = self.face_to_voice(face, voice)
        voice_ctx = self.voice_to_face(voice, face)
        tokens = torch.cat([face_ctx, voice_ctx], dim=1)
        w = torch.softmax(self.pool.score(tokens).squeeze(-1), dim=-1)  # (B, Tf + Tv)
        pooled = torch.einsum("bt,btd->bd", w, tokens)
        n_face = face_ctx.shape[1]
        weights = torch.stack([w[:, :n_face].sum(-1), w[:, n_face:].sum(-1)], dim=-1)
        x = torch.cat([pooled, face_ctx.mean(1), voice_ctx.mean(1)], dim=-1)
        return FusionOutput(
            self.classifier(x).squeeze(-1), self.unimodal_logits(image, audio), weights
        )
