"""Tiny architectures for tests: the real encoders and fusions, narrow enough for a 2-core CPU."""

from __future__ import annotations

TINY_ARCH = {
    "image_encoder_kwargs": {"width": 8},
    "audio_encoder_kwargs": {"width": 8, "hidden": 16},
    "embed_dim": 32,
}

# A one-layer ViT for the hf_image wrapper, built offline from this config; each test adds the
# labels it needs (id2label / label2id).
TINY_VIT_SHAPE = {
    "model_type": "vit",
    "image_size": 32,
    "patch_size": 8,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
}
