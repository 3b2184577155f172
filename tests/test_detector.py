"""The public Detector: construction, save/load round trip, hub push, and predict end to end."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mmdeepfake import EMOTIONS, Detector
from mmdeepfake.errors import CheckpointError, ConfigError, MmDeepfakeError, NoFaceFoundError
from mmdeepfake.fusion import FUSIONS
from mmdeepfake.prediction import Prediction
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    return Detector(**TINY_ARCH)


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("media") / "face.mp4"
    mf.face_video(path, seconds=5.0, size=(320, 240))
    return str(path)


def test_default_architecture_is_resnet18_cnn_lstm_mid():
    det = Detector()
    assert det.config["image_encoder"] == "resnet18"
    assert det.config["audio_encoder"] == "cnn_lstm"
    assert det.fusion_name == "mid"
    backbone_params = sum(p.numel() for p in det.model.image_encoder.backbone.parameters())
    assert 11_000_000 < backbone_params < 11_300_000  # ResNet-18 without its ImageNet head


@pytest.mark.slow
@pytest.mark.parametrize("fusion", sorted(FUSIONS.names()))
def test_save_and_load_round_trip(tmp_path, fusion):
    torch.manual_seed(1)
    det = Detector(fusion=fusion, **TINY_ARCH).with_config(temperature=1.7, metadata={"note": "x"})
    det.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in tmp_path.iterdir()}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["fusion"] == fusion and config["temperature"] == 1.7

    loaded = Detector.from_pretrained(tmp_path)
    assert loaded.config == det.config
    faces, waves = torch.randn(2, 3, 224, 224), torch.randn(2, 32000) * 0.1
    with torch.inference_mode():
        a, b = det(faces, waves), loaded(faces, waves)
    torch.testing.assert_close(a.fake_logit, b.fake_logit)
    torch.testing.assert_close(a.consistency, b.consistency)


def test_loading_refuses_mismatched_or_broken_checkpoints(tmp_path, detector):
    with pytest.raises(CheckpointError, match="does not exist"):
        Detector.from_pretrained(tmp_path / "missing")

    detector.save_pretrained(tmp_path / "ok")
    config = json.loads((tmp_path / "ok" / "config.json").read_text())
    config["embed_dim"] = 48  # weights no longer fit the architecture
    (tmp_path / "ok" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError):
        Detector.from_pretrained(tmp_path / "ok")

    detector.save_pretrained(tmp_path / "corrupt")
    (tmp_path / "corrupt" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="could not load"):
        Detector.from_pretrained(tmp_path / "corrupt")

    (tmp_path / "nopickle").mkdir()
    (tmp_path / "nopickle" / "config.json").write_text(json.dumps(detector.config.to_dict()))
    (tmp_path / "nopickle" / "pytorch_model.bin").write_bytes(b"pickles are never loaded")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        Detector.from_pretrained(tmp_path / "nopickle")


def test_hub_id_without_network_gives_a_clear_error():
    # HF_HUB_OFFLINE=1 in tests: the Hub is unreachable here, so a repo id must fail cleanly.
    with pytest.raises(CheckpointError, match="hub repo id"):
        Detector.from_pretrained("nobody/does-not-exist")


def test_push_to_hub_uploads_the_saved_folder(monkeypatch, detector):
    # The Hugging Face Hub cannot be reached from here, so HfApi's upload is replaced by a
    # recorder; everything up to the upload (folder, config, weights, card) runs for real.
    from huggingface_hub import HfApi

    uploaded = {}

    def fake_create_repo(self, repo_id, **kwargs):
        from types import SimpleNamespace

        uploaded["repo"] = repo_id
        return SimpleNamespace(repo_id=repo_id)

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        from pathlib import Path

        uploaded["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        uploaded["config"] = json.loads((Path(folder_path) / "config.json").read_text())
        return f"https://hub.invalid/{repo_id}"

    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload_folder)
    detector.push_to_hub("someone/tiny-detector")
    assert uploaded["repo"] == "someone/tiny-detector"
    assert {"config.json", "model.safetensors", "README.md"} <= set(uploaded["files"])
    assert uploaded["config"]["fusion"] == detector.fusion_name


def _check_prediction(pred: Prediction) -> None:
    assert pred.label in ("real", "fake")
    assert 0.0 <= pred.fake_probability <= 1.0
    assert (pred.label == "fake") == (pred.fake_probability >= pred.threshold)
    for dist in (pred.face_emotions, pred.voice_emotions):
        assert list(dist) == list(EMOTIONS)
        assert abs(sum(dist.values()) - 1.0) < 1e-3
    assert 0.0 <= pred.consistency <= 1.0
    assert set(pred.modality_scores) == {"image", "audio"}
    assert pred.segments and pred.faces
    for seg in pred.segments:
        assert seg.end > seg.start and 0.0 <= seg.consistency <= 1.0
    json.dumps(pred.to_dict())  # serialisable as it is


@pytest.mark.slow
def test_predict_video_returns_every_field(detector, face_clip):
    pred = detector.predict(face_clip)
    _check_prediction(pred)
    assert pred.duration == pytest.approx(5.0, abs=0.2)
    assert pred.segments[0].start == 0.0 and pred.segments[-1].end == pytest.approx(5.0, abs=0.2)
    assert len(pred.faces) == 16
    # The only warnings are about the model itself: random weights, no unfamiliar-input guard.
    assert len(pred.warnings) == 2 and "random" in pred.warnings[0] and "guard" in pred.warnings[1]
    x1, y1, x2, y2 = pred.faces[0].box
    assert 0 <= x1 < x2 <= 320 and 0 <= y1 < y2 <= 240
    stages = {
        "decode",
        "face_detection",
        "audio_decode",
        "features",
        "image_encoder",
        "audio_encoder",
        "fusion",
    }
    assert set(pred.timings) == stages | {"total"}
    assert pred.timings["total"] >= pred.timings["decode"] + pred.timings["image_encoder"]


@pytest.mark.slow
def test_predict_video_from_bytes_matches_path(detector, face_clip):
    with open(face_clip, "rb") as handle:
        from_bytes = detector.predict(handle.read(), num_frames=4)
    from_path = detector.predict(face_clip, num_frames=4)
    assert from_bytes.fake_probability == pytest.approx(from_path.fake_probability, abs=1e-5)
    assert len(from_bytes.faces) == 4


@pytest.mark.slow
def test_predict_image_and_audio_pair(tmp_path, detector):
    photo = mf.face_photo()
    wav = mf.write_audio(tmp_path / "voice.wav", mf.voice_like(seconds=3.0))
    jpg = tmp_path / "face.jpg"
    from PIL import Image

    Image.fromarray(photo).save(jpg)
    from_paths = detector.predict(image=str(jpg), audio=str(wav))
    _check_prediction(from_paths)
    assert from_paths.faces[0].time is None

    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    from_mixed = detector.predict(
        images=[photo, buffer.getvalue()], audio=mf.voice_like(seconds=3.0)
    )
    assert len(from_mixed.faces) == 2


@pytest.mark.slow
def test_threshold_and_abstention(detector, face_clip):
    always_fake = detector.predict(face_clip, num_frames=2, threshold=0.0)
    assert always_fake.label == "fake" and always_fake.threshold == 0.0
    unsure = detector.predict(face_clip, num_frames=2, abstain_below=1.0)
    assert unsure.label == "uncertain"
    with pytest.raises(ConfigError):
        detector.predict(face_clip, threshold=1.5)


def test_predict_argument_errors_are_typed(detector, face_clip):
    with pytest.raises(ConfigError, match="video with sound"):
        detector.predict(image=mf.face_photo(), require="both")
    with pytest.raises(ConfigError, match="a voice recording"):
        detector.predict()
    with pytest.raises(ConfigError, match="not both"):
        detector.predict(face_clip, audio=mf.voice_like())


@pytest.mark.slow
def test_image_without_face_is_reported(detector):
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    with pytest.raises(NoFaceFoundError, match="No face"):
        detector.predict(image=noise, audio=mf.voice_like(seconds=2.0), require="both")
    with pytest.raises(NoFaceFoundError, match="No face"):
        detector.predict(image=noise)  # nothing else to score
    # Pre-cropped faces can skip detection.
    pred = detector.predict(image=noise, audio=mf.voice_like(seconds=2.0), detect_faces=False)
    assert pred.faces[0].box == (0.0, 0.0, 320.0, 240.0)


@pytest.mark.slow
def test_frames_without_face_are_skipped_with_a_warning(tmp_path, detector):
    face = mf.face_photo()[:480, :480]
    blank = np.full_like(face, 90)
    frames = np.stack([face] * 25 + [blank] * 25)
    path = mf.write_video(tmp_path / "half.mp4", frames, fps=25, audio=mf.voice_like(seconds=2.0))
    pred = detector.predict(str(path), num_frames=8)
    assert 0 < len(pred.faces) < 8
    assert any("no face in" in w for w in pred.warnings)


@pytest.mark.parametrize(
    "make_bad",
    [
        lambda d: d / "missing.mp4",
        lambda d: _write(d / "empty.mp4", b""),
        lambda d: _write(d / "notes.mp4", b"just some text, not a video\n" * 20),
        lambda d: _write(d / "random.mp4", np.random.default_rng(0).bytes(4096)),
    ],
    ids=["missing", "empty", "text-as-mp4", "random-bytes"],
)
def test_bad_videos_raise_only_mmdeepfake_errors(tmp_path, detector, make_bad):
    with pytest.raises(MmDeepfakeError) as info:
        detector.predict(str(make_bad(tmp_path)))
    assert len(str(info.value)) > 20


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def test_import_is_light():
    code = (
        "import sys, mmdeepfake; "
        "heavy = {'torch', 'gradio', 'boto3', 'av', 'transformers', 'torchvision', 'torchaudio'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
