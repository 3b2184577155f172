"""Tiny architectures for tests: the real encoders and fusions, narrow enough for a 2-core CPU."""

from __future__ import annotations

TINY_ARCH = {
    "image_encoder_kwargs": {"width": 8},
    "audio_encoder_kwargs": {"width": 8, "hidden": 16},
    "embed_dim": 32,
}
