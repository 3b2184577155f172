"""Tiny architectures for tests: the real encoders and fusions, narrow enough for a 2-core CPU."""

from __future__ import annotations

from mmdeepfake.architectures import model_options

#: The named ``tiny`` architecture as Detector keyword arguments, without the fusion (tests
#: pick it) and dropout: ``Detector(fusion="attention", **TINY_ARCH)``.
TINY_ARCH = model_options("tiny")

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
