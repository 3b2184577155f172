"""CNN + BiLSTM voice emotion encoder over 128x128 log-mel spectrograms.

Waveform windows (B, S) at 16 kHz go through the shared :class:`LogMelSpectrogram` front end
(so training and inference cannot disagree on features), four convolution blocks that learn
local time-frequency patterns (pitch contours, formants, energy bursts), a mean over the
remaining frequency bins, and a bidirectional LSTM that models prosody over time.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mmdeepfake.encoders.base import (
    AttentivePool,
    EmotionEncoder,
    EncoderOutput,
    check_input,
    register_encoder,
)
from mmdeepfake.errors import ConfigError
from mmdeepfake.labels import NUM_EMOTIONS
from mmdeepfake.media.features import LogMelSpectrogram

# (frequency, time) pooling after each block: 128x128 -> 8 frequency bins x 32 time steps.
_POOLS: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 1), (2, 1))


def _conv_block(in_channels: int, out_channels: int, pool: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(pool),
    )


@register_encoder("cnn_lstm")
class CnnLstmEmotionEncoder(EmotionEncoder):
    """Waveforms (B, S) -> tokens (B, T, D) with T = 32 for one 128-frame window.

    x = BatchNorm(logmel(wave)) (B, 1, 128, 128); c = CNN(x) (B, 4w, 8, 32);
    s_t = mean_f c[:, :, f, t];
    h_t = BiLSTM(s)_t; tokens_t = LayerNorm(W h_t);
    embedding = attentive pool (``pooling="attention"``) or mean (``"mean"``) of tokens;
    emotion_logits = U dropout(embedding) + b.
    ``width`` w sets the convolution channels (w, 2w, 4w, 4w); ``hidden`` the LSTM size.
    """

    modality = "audio"

    def __init__(
        self,
        embed_dim: int = 256,
        width: int = 32,
        hidden: int = 128,
        pooling: Literal["attention", "mean"] = "attention",
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if pooling not in ("attention", "mean"):
            raise ConfigError(
                f"Unknown pooling {pooling!r} for cnn_lstm: use 'attention' or 'mean'."
            )
        self.embed_dim = embed_dim
        self.frontend = LogMelSpectrogram()
        self.input_norm = nn.BatchNorm2d(1)
        channels = [1, width, 2 * width, 4 * width, 4 * width]
        self.cnn = nn.Sequential(
            *(_conv_block(channels[i], channels[i + 1], pool) for i, pool in enumerate(_POOLS))
        )
        self.lstm = nn.LSTM(channels[-1], hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(2 * hidden, embed_dim), nn.LayerNorm(embed_dim)
        )
        self.pool: nn.Module | None = (
            AttentivePool(embed_dim, embed_dim // 2) if pooling == "attention" else None
        )
        self.emotion_head = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, NUM_EMOTIONS))

    def forward(self, inputs: torch.Tensor) -> EncoderOutput:
        check_input(inputs, 2, "waveform windows of shape (B, samples) at 16 kHz")
        spec = self.input_norm(self.frontend(inputs))  # (B, 1, n_mels, frames)
        feats = self.cnn(spec).mean(dim=2).transpose(1, 2)  # (B, T, C)
        hidden, _ = self.lstm(feats)
        tokens = self.proj(hidden)
        embedding = self.pool(tokens) if self.pool is not None else tokens.mean(dim=1)
        return EncoderOutput(embedding, tokens, self.emotion_head(embedding))
