"""Per-modality emotion encoders behind a registry.

``create_encoder("resnet18", embed_dim=256, width=64)`` builds a face encoder;
``create_encoder("cnn_lstm")`` a voice encoder; ``create_encoder("fer2013")`` the pretrained
FER2013 face-emotion prior (weights ship with the package); ``hf_image`` / ``hf_audio`` wrap
Hugging Face classification models by id. Every encoder returns an :class:`EncoderOutput`.
"""

from __future__ import annotations

from mmdeepfake.encoders import cnn_lstm, fer2013, hf, resnet
from mmdeepfake.encoders.base import (
    ENCODERS,
    EmotionEncoder,
    EncoderOutput,
    create_encoder,
    register_encoder,
)
from mmdeepfake.encoders.resnet import load_transformers_resnet_weights

__all__ = [
    "ENCODERS",
    "EmotionEncoder",
    "EncoderOutput",
    "cnn_lstm",
    "create_encoder",
    "fer2013",
    "hf",
    "load_transformers_resnet_weights",
    "register_encoder",
    "resnet",
]
