"""Provenance in every answer: which model spoke, what it was trained on, and its card.

The Hugging Face Hub cannot be reached from here, so ``HfApi``'s upload is replaced by a
recorder in the push test; everything up to the upload runs for real.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.prediction import ModelInfo
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

REPO = Path(__file__).resolve().parents[1]
STARTER_CARD = REPO / "src" / "mmdeepfake" / "starter" / "README.md"


@pytest.fixture(scope="module")
def starter() -> Detector:
    return Detector.starter()


@pytest.fixture(scope="module")
def pair():
    return mf.face_photo(), mf.voice_like(seconds=2.0)


@pytest.mark.slow
def test_starter_predictions_name_it_and_carry_the_synthetic_caveat(starter, pair):
    pred = starter.predict(image=pair[0], audio=pair[1], on_unfamiliar="warn")
    assert pred.model == ModelInfo(
        name="starter", training_data=starter.metadata["trained_on"], synthetic=True
    )
    assert pred.to_dict()["model"]["name"] == "starter"
    assert any("trained on synthetic data only" in w for w in pred.warnings)
    assert "model starter, trained on mmdeepfake-synth" in pred.summary()
    alone = starter.predict(audio=pair[1])
    assert any("trained on synthetic data only" in w for w in alone.warnings)


@pytest.mark.slow
def test_a_model_trained_on_real_data_has_no_synthetic_caveat(pair, tmp_path):
    torch.manual_seed(0)
    detector = Detector(
        **TINY_ARCH, metadata={"training_data": "recorded interviews", "synthetic_data": False}
    )
    detector.save_pretrained(tmp_path)
    loaded = Detector.from_pretrained(tmp_path)
    pred = loaded.predict(image=pair[0], audio=pair[1])
    assert pred.model.name == str(tmp_path) and pred.model.training_data == "recorded interviews"
    assert not pred.model.synthetic
    assert not any("synthetic" in w or "random" in w for w in pred.warnings)


@pytest.mark.slow
def test_an_untrained_detector_warns_that_its_weights_are_random(pair):
    torch.manual_seed(0)
    pred = Detector(**TINY_ARCH).predict(image=pair[0], audio=pair[1])
    assert pred.model.name == "untrained" and "random" in pred.model.training_data
    assert any("weights are random" in w for w in pred.warnings)


def test_saving_keeps_the_models_own_card(starter, tmp_path):
    starter.save_pretrained(tmp_path / "copy")
    assert (tmp_path / "copy" / "README.md").read_text() == STARTER_CARD.read_text()
    again = Detector.from_pretrained(tmp_path / "copy")
    again.save_pretrained(tmp_path / "copy2")
    card = (tmp_path / "copy2" / "README.md").read_text()
    assert "trained on synthetic drawn faces and synthetic voices only" in card


def test_a_model_without_a_card_gets_one_from_its_metadata(tmp_path):
    torch.manual_seed(0)
    Detector(**TINY_ARCH, metadata={"trained_on": "s3://bucket/dataset/"}).save_pretrained(tmp_path)
    card = (tmp_path / "README.md").read_text()
    assert "Trained on: s3://bucket/dataset/" in card
    assert "no unfamiliar-input guard" in card


def test_push_to_hub_uploads_the_models_own_card(monkeypatch, starter):
    from huggingface_hub import HfApi

    uploaded = {}

    def fake_create_repo(self, repo_id, **kwargs):
        from types import SimpleNamespace

        return SimpleNamespace(repo_id=repo_id)

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        uploaded["card"] = (Path(folder_path) / "README.md").read_text()
        return f"https://hub.invalid/{repo_id}"

    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload_folder)
    starter.push_to_hub("someone/starter-copy")
    assert uploaded["card"] == STARTER_CARD.read_text()


@pytest.mark.slow
def test_cli_records_name_the_model(tmp_path):
    from PIL import Image

    Image.fromarray(mf.face_photo()).save(tmp_path / "face.jpg")
    mf.write_audio(tmp_path / "voice.wav", mf.voice_like(seconds=2.0))
    args = [
        "--pair",
        str(tmp_path / "face.jpg"),
        str(tmp_path / "voice.wav"),
        "--audio-only",
        str(tmp_path / "missing.wav"),
    ]
    run = [sys.executable, "-m", "mmdeepfake.cli.predict", *args]
    as_csv = subprocess.run(
        [*run, "--format", "csv"], capture_output=True, text=True, timeout=600, check=False
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["model"].split(" ")[0] for r in rows] == ["starter", "starter"]
    assert "trained on mmdeepfake-synth" in rows[0]["model"]
    assert rows[1]["error"]  # a failed input still says which model would have answered
    as_jsonl = subprocess.run(run, capture_output=True, text=True, timeout=600, check=False)
    records = [json.loads(line) for line in as_jsonl.stdout.splitlines()]
    assert all(r["model"]["name"] == "starter" and r["model"]["synthetic"] for r in records)


@pytest.mark.slow
def test_the_page_shows_the_model_and_the_uncertain_banner(starter):
    sys.path.insert(0, str(REPO / "demos"))
    gradio_media = pytest.importorskip("gradio.media")
    from mmdeepfake_demo import views

    # Real recorded speech shipped by gradio, alone: unlike the starter's synthetic voices.
    pred = starter.predict(audio=gradio_media.get_audio("recording1.wav")).to_dict()
    text = views.verdict_markdown(pred)
    assert "Model: `starter`, trained on mmdeepfake-synth" in text
    assert text.splitlines()[0] == (
        "## uncertain: the voice is unlike anything this model was trained on"
    )
    label = views.verdict_label(pred)
    assert label["uncertain"] == 1.0 and label["fake"] == pytest.approx(pred["fake_probability"])
    warned = views.verdict_markdown(
        starter.predict(
            audio=gradio_media.get_audio("recording1.wav"), on_unfamiliar="warn"
        ).to_dict()
    )
    assert warned.splitlines()[0].startswith("## warning: the voice is unlike")
