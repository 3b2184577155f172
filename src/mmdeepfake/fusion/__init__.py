"""Fusion strategies behind a registry: early, mid, late, adaptive, attention.

``create_fusion("mid", image_dim=256, audio_dim=256)``; every strategy maps the two
:class:`~mmdeepfake.encoders.EncoderOutput` of a batch to a :class:`FusionOutput`.
"""

from __future__ import annotations

# The strategies register in import order, the order they are listed to users in.
# isort: off
from mmdeepfake.fusion import early, mid, late, adaptive, attention

# isort: on
from mmdeepfake.fusion.base import (
    FUSIONS,
    MODALITIES,
    Fusion,
    FusionOutput,
    create_fusion,
    register_fusion,
)
from mmdeepfake.fusion.consistency import (
    LN2,
    consistency_from_logits,
    embedding_cosine,
    js_divergence,
    js_divergence_from_logits,
)

__all__ = [
    "FUSIONS",
    "LN2",
    "MODALITIES",
    "Fusion",
    "FusionOutput",
    "adaptive",
    "attention",
    "consistency_from_logits",
    "create_fusion",
    "early",
    "embedding_cosine",
    "js_divergence",
    "js_divergence_from_logits",
    "late",
    "mid",
    "register_fusion",
]
