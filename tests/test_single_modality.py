"""One modality at a time: a face alone, a voice alone, a video without usable sound or face.

Through the API, the CLI (``--image-only``/``--audio-only``, ``--require``) and the demo's
endpoints; ``require="both"`` brings back the typed errors. Media are made here: Grace Hopper's
photo (matplotlib's sample data), a voice-like signal, silent and faceless clips.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.errors import ConfigError, NoAudioTrackError, NoFaceFoundError, SilentAudioError
from mmdeepfake.media import faces, features
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
HEAD_TEMPERATURE = {"image": 3.0, "audio": 0.5}


@pytest.fixture(scope="module")
def detector() -> Detector:
    """A tiny detector whose one-modality heads carry their own temperatures."""
    torch.manual_seed(0)
    detector = Detector(**TINY_ARCH, temperature=1.7)
    detector.with_config(
        metadata={
            "trained_on": "nothing (a test model)",
            "modality_calibration": {
                m: {"temperature": t, "val_auc": 0.5} for m, t in HEAD_TEMPERATURE.items()
            },
        }
    )
    return detector


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("single")
    blank = np.full((50, 240, 320, 3), 90, dtype=np.uint8)
    from PIL import Image

    files = {
        "muted": mf.face_video(folder / "muted.mp4", seconds=2.0, with_audio=False),
        "silent": mf.write_video(
            folder / "silent.mp4",
            mf.face_frames(50, (320, 240)),
            fps=25,
            audio=np.zeros(32000, dtype=np.float32),
        ),
        "faceless": mf.write_video(
            folder / "faceless.mp4", blank, fps=25, audio=mf.voice_like(seconds=2.0)
        ),
        "voice": mf.write_audio(folder / "voice.wav", mf.voice_like(seconds=3.0)),
        "photo": folder / "face.jpg",
    }
    Image.fromarray(mf.face_photo()).save(files["photo"])
    return files


def _head_probability(detector: Detector, modality: str, batch: torch.Tensor) -> float:
    """What the modality's own head says, with its own temperature, computed by hand."""
    with torch.inference_mode():
        encode = detector.model.encode_image if modality == "image" else detector.model.encode_audio
        logit = detector.model.head_logit(modality, encode(batch).embedding).mean()
    return float(torch.sigmoid(logit / HEAD_TEMPERATURE[modality]))


def _check_alone(pred, modality: str) -> None:
    assert pred.modalities == [modality]
    assert pred.consistency is None and pred.segments == []
    assert set(pred.modality_scores) == {modality}
    assert pred.modality_scores[modality] == pytest.approx(pred.fake_probability)
    assert set(pred.domain) == {modality}
    assert (pred.face_emotions == {}) == (modality == "audio")
    assert (pred.voice_emotions == {}) == (modality == "image")
    assert any("emotion-consistency cue" in w and "unavailable" in w for w in pred.warnings)
    # The test model's heads scored ROC-AUC 0.5 on validation: the verdict says so.
    assert any("not informative" in w for w in pred.warnings)
    data = json.loads(pred.to_json())
    assert data["consistency"] is None and data["modalities"] == [modality]
    assert "only, no consistency cue" in pred.summary()


def test_a_face_alone_is_scored_by_the_image_head(detector):
    photo = mf.face_photo()
    pred = detector.predict(image=photo, detect_faces=False)
    _check_alone(pred, "image")
    crop = features.faces_to_tensor(np.stack([faces.center_crop_face(photo)]))
    assert pred.fake_probability == pytest.approx(
        _head_probability(detector, "image", crop), abs=1e-5
    )
    assert pred.face_emotion is not None and pred.voice_emotion is None
    several = detector.predict(images=[photo, photo[:, ::-1].copy()], detect_faces=False)
    _check_alone(several, "image")
    assert len(several.faces) == 2


def test_a_voice_alone_is_scored_by_the_audio_head(detector):
    wave = mf.voice_like(seconds=3.0)
    pred = detector.predict(audio=wave)
    _check_alone(pred, "audio")
    windows = features.waves_to_windows(wave, features.audio_windows(wave))
    assert pred.fake_probability == pytest.approx(
        _head_probability(detector, "audio", windows), abs=1e-5
    )
    assert pred.duration == pytest.approx(3.0, abs=0.01) and pred.faces == []


@pytest.mark.parametrize(
    ("clip", "modality", "reason", "error"),
    [
        ("muted", "image", "no sound track", NoAudioTrackError),
        ("silent", "image", "sound is silent", SilentAudioError),
        ("faceless", "audio", "no face was found", NoFaceFoundError),
    ],
)
def test_a_video_without_one_modality_is_scored_from_the_other(
    detector, clips, clip, modality, reason, error
):
    pred = detector.predict(str(clips[clip]), num_frames=4)
    _check_alone(pred, modality)
    assert any(reason in w for w in pred.warnings)
    with pytest.raises(error):
        detector.predict(str(clips[clip]), num_frames=4, require="both")


def test_require_both_refuses_one_modality_and_bad_values(detector):
    with pytest.raises(ConfigError, match="require='both'"):
        detector.predict(image=mf.face_photo(), require="both")
    with pytest.raises(ConfigError, match="require='both'"):
        detector.predict(audio=mf.voice_like(), require="both")
    with pytest.raises(ConfigError, match="require must be"):
        detector.predict(audio=mf.voice_like(), require="one")


def test_without_the_heads_own_temperature_the_models_is_used(clips):
    torch.manual_seed(0)
    plain = Detector(**TINY_ARCH, temperature=1.7)
    wave = mf.voice_like(seconds=3.0)
    pred = plain.predict(audio=wave)
    windows = features.waves_to_windows(wave, features.audio_windows(wave))
    with torch.inference_mode():
        logit = plain.model.head_logit("audio", plain.model.encode_audio(windows).embedding)
    assert pred.fake_probability == pytest.approx(
        float(torch.sigmoid(logit.mean() / 1.7)), abs=1e-5
    )


# --- the command line ---------------------------------------------------------------------


def run_predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmdeepfake.cli.predict", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def model_dir(detector, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    detector.save_pretrained(folder)
    return folder


def test_cli_scores_images_and_voices_on_their_own(model_dir, clips):
    result = run_predict(
        "--image-only",
        str(clips["photo"]),
        "--audio-only",
        str(clips["voice"]),
        "--model",
        str(model_dir),
        "--format",
        "csv",
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["modalities"] for r in rows] == ["image", "audio"]
    assert [r["consistency"] for r in rows] == ["", ""]
    assert rows[0]["face_emotion"] and not rows[0]["voice_emotion"]
    assert rows[1]["voice_emotion"] and not rows[1]["face_emotion"]


def test_cli_require_both_turns_a_muted_video_into_an_error_record(model_dir, clips):
    lenient = run_predict(str(clips["muted"]), "--model", str(model_dir), "--num-frames", "2")
    assert lenient.returncode == 0, lenient.stderr
    assert json.loads(lenient.stdout)["modalities"] == ["image"]
    strict = run_predict(
        str(clips["muted"]), "--model", str(model_dir), "--num-frames", "2", "--require", "both"
    )
    assert strict.returncode == 1
    record = json.loads(strict.stdout)
    assert record["error_type"] == "NoAudioTrackError"


# --- the demo's endpoints -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(detector, tmp_path_factory):
    pytest.importorskip("gradio")
    from gradio_client import Client

    sys.path.insert(0, str(REPO / "demos"))
    from mmdeepfake_demo import build_app, launch

    app = build_app(detector, examples_dir=tmp_path_factory.mktemp("examples"))
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = launch(app, host="127.0.0.1", port=port, block=False)
    yield Client(url, verbose=False)
    app.close()


def test_demo_accepts_a_face_or_a_voice_alone(client, clips):
    from gradio_client import handle_file

    face = client.predict(
        handle_file(str(clips["photo"])), None, 0.5, None, api_name="/detect_pair"
    )
    voice = client.predict(
        None, handle_file(str(clips["voice"])), 0.5, None, api_name="/detect_pair"
    )
    muted = client.predict(handle_file(str(clips["muted"])), 0.5, 4, None, api_name="/detect")
    assert face["modalities"] == ["image"] and face["consistency"] is None
    assert voice["modalities"] == ["audio"] and voice["voice_emotion"]
    assert muted["modalities"] == ["image"]
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="no face image and no voice"):
        client.predict(None, None, 0.5, None, api_name="/detect_pair")


def test_demo_views_explain_a_one_modality_prediction(detector, clips):
    sys.path.insert(0, str(REPO / "demos"))
    from mmdeepfake_demo import views

    pred = detector.predict(audio=str(clips["voice"])).to_dict()
    text = views.verdict_markdown(pred)
    assert "Only the **voice** was analysed" in text and "consistency cue was unavailable" in text
    assert "only (no consistency)" in views.emotion_figure(pred).layout.title.text
    assert "only one modality" in views.timeline_figure(pred).layout.title.text
