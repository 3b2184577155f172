"""`mmdeepfake-predict` flags that change a result, checked by the value they change.

A real subprocess on a face image and a voice recording whose emotions disagree, scored by the
bundled starter saved with temperature 2: the probability printed must be the formula's, and
``--threshold`` must move the verdict.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from mmdeepfake import Detector
from mmdeepfake.data.synth_face import draw_face
from mmdeepfake.data.synth_voice import synth_voice

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(1)
    Image.fromarray(draw_face("sad", rng)).save(folder / "face.png")
    sf.write(folder / "voice.wav", synth_voice("happy", rng, seconds=3.0), 16000)
    return folder / "face.png", folder / "voice.wav"


@pytest.fixture(scope="module")
def hot_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("starter-t2")
    Detector.starter().with_config(temperature=2.0).save_pretrained(folder)
    return folder


def run_predict(*args: str) -> list[dict]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mmdeepfake.cli.predict",
            "--format",
            "jsonl",
            "--no-progress",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_cli_applies_the_saved_temperature_and_the_threshold_flag(pair, hot_model):
    face, voice = pair
    plain = Detector.from_pretrained(hot_model).with_config(temperature=1.0)
    reference = plain.predict(image=str(face), audio=str(voice))
    z = float(
        np.mean(
            [math.log(s.fake_probability / (1 - s.fake_probability)) for s in reference.segments]
        )
    )
    expected = 1 / (1 + math.exp(-z / 2.0))
    assert abs(expected - reference.fake_probability) > 1e-3

    (record,) = run_predict("--pair", str(face), str(voice), "--model", str(hot_model))
    assert record["fake_probability"] == pytest.approx(expected, rel=1e-4)
    assert record["label"] == "fake" and record["threshold"] == 0.5

    bar = min(1.0, record["fake_probability"] + 1e-3)
    (strict,) = run_predict(
        "--pair", str(face), str(voice), "--model", str(hot_model), "--threshold", str(bar)
    )
    assert strict["threshold"] == pytest.approx(bar)
    assert strict["label"] == "real"
    assert strict["fake_probability"] == pytest.approx(record["fake_probability"], rel=1e-6)
