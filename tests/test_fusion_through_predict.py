"""The mid fusion's agreement inputs, seen through ``Detector.predict`` on real decoding.

``test_core_values.py`` checks the fusion's input vector with a hook on a random fusion. Here the
shipped starter's trained encoders read synthetic faces and voices whose emotions agree or
disagree by construction, and its mid-fusion classifier is swapped for a probe that reads one
input feature. The fake probability ``predict`` reports is then a known function of that
feature, so a fusion fed the wrong tensors (the face against itself: divergence always 0) gives
the agreeing and the disagreeing pair the same score and fails here, whereas the trained
classifier can hide it behind its other inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from mmdeepfake import Detector
from mmdeepfake.data.synth_face import draw_face
from mmdeepfake.data.synth_voice import synth_voice
from mmdeepfake.labels import EMOTIONS, NUM_EMOTIONS

SCALE, BIAS = 6.0, -3.0


class ReadFeature(nn.Module):
    """A classifier whose fake logit is ``SCALE * x[:, columns].sum(-1) + BIAS``."""

    def __init__(self, columns: slice) -> None:
        super().__init__()
        self.columns = columns

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (SCALE * x[:, self.columns].sum(dim=-1) + BIAS)[:, None]


def starter_reading(columns: slice) -> Detector:
    detector = Detector.starter().with_config(temperature=1.0)
    assert detector.fusion_name == "mid"
    detector.model.fusion.classifier = ReadFeature(columns)
    return detector


def hidden_width(detector: Detector) -> int:
    return detector.model.fusion.image_proj[1].out_features


def pair(face: str, voice: str):
    rng = np.random.default_rng(7)
    return draw_face(face, rng), synth_voice(voice, rng, seconds=4.0)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def vector(emotions: dict[str, float]) -> np.ndarray:
    return np.array([emotions[name] for name in EMOTIONS])


@pytest.fixture(scope="module")
def pairs():
    return {"agree": pair("angry", "angry"), "disagree": pair("angry", "happy")}


def run(detector: Detector, media):
    image, audio = media
    return detector.predict(image=image, audio=audio, detect_faces=False)


def test_the_divergence_input_is_one_minus_the_reported_consistency(pairs):
    detector = starter_reading(slice(-2, -1))
    scores = {}
    for name, media in pairs.items():
        prediction = run(detector, media)
        for segment in prediction.segments:
            expected = sigmoid(SCALE * (1.0 - segment.consistency) + BIAS)
            assert segment.fake_probability == pytest.approx(expected, abs=2e-3)
        scores[name] = prediction.fake_probability
    assert scores["agree"] < 0.1 and scores["disagree"] > 0.9


def test_the_difference_input_is_face_minus_voice_emotions(pairs):
    detector = Detector.starter()
    h = hidden_width(detector)
    start = 2 * h + 2 * NUM_EMOTIONS
    detector = starter_reading(slice(start, start + NUM_EMOTIONS))
    scores = {}
    for name, media in pairs.items():
        prediction = run(detector, media)
        for segment in prediction.segments:
            gap = np.abs(vector(segment.face_emotions) - vector(segment.voice_emotions)).sum()
            assert segment.fake_probability == pytest.approx(sigmoid(SCALE * gap + BIAS), abs=2e-3)
        scores[name] = prediction.fake_probability
    assert scores["agree"] < scores["disagree"]


def test_the_emotion_inputs_are_the_reported_face_and_voice_emotions(pairs):
    detector = Detector.starter()
    h = hidden_width(detector)
    happy = EMOTIONS.index("happy")
    for offset, side in ((2 * h, "face_emotions"), (2 * h + NUM_EMOTIONS, "voice_emotions")):
        probe = starter_reading(slice(offset + happy, offset + happy + 1))
        prediction = run(probe, pairs["disagree"])
        for segment in prediction.segments:
            p_happy = getattr(segment, side)["happy"]
            assert segment.fake_probability == pytest.approx(
                sigmoid(SCALE * p_happy + BIAS), abs=2e-3
            )
