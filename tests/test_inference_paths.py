"""Inference-only fast paths give the same answers as the plain ones, on the model's device."""

from __future__ import annotations

import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.encoders import create_encoder
from mmdeepfake.media.faces import FaceDetector
from tiny_models import TINY_ARCH


@pytest.mark.slow
@pytest.mark.parametrize("width", [8, 16])
def test_resnet_channels_last_inference_matches_training_layout(width):
    torch.manual_seed(0)
    encoder = create_encoder("resnet18", width=width, embed_dim=16).eval()
    faces = torch.randn(3, 3, 224, 224)
    with torch.no_grad():
        reference = encoder(faces)  # the plain (contiguous) layout
    with torch.inference_mode():
        fast = encoder(faces)
    torch.testing.assert_close(fast.embedding, reference.embedding, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(fast.tokens, reference.tokens, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(fast.emotion_logits, reference.emotion_logits, rtol=1e-3, atol=1e-4)


def test_resnet_still_trains_with_narrow_widths():
    encoder = create_encoder("resnet18", width=4, embed_dim=16).train()
    out = encoder(torch.randn(2, 3, 64, 64))
    (out.embedding.sum() + out.emotion_logits.sum()).backward()
    assert all(p.grad is not None for p in encoder.parameters() if p.requires_grad)


def test_shared_face_detector_is_one_per_device():
    assert FaceDetector.shared() is FaceDetector.shared("cpu")
    assert FaceDetector.shared(torch.device("cpu")) is FaceDetector.shared("cpu")
    assert FaceDetector.shared("cpu").device == torch.device("cpu")


def test_detector_runs_face_detection_on_its_own_device():
    detector = Detector(**TINY_ARCH)
    assert detector.pipeline.face_detector().device == detector.device
