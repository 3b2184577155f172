"""The unfamiliar-input guard: its maths, its storage, its verdicts, training and evaluation.

Real media only: Grace Hopper's photo (matplotlib's sample data), the astronaut photo
(scikit-image), and real recorded speech shipped by gradio (``gradio.media``); synthetic
clips come from ``mmdeepfake-synth``'s own generator.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.data.storage import open_storage
from mmdeepfake.domain import DomainGuard, shrunk_covariance
from mmdeepfake.media import decode, faces, features
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def real_speech() -> str:
    """A real recorded voice shipped by gradio's media registry (not synthesised)."""
    media = pytest.importorskip("gradio.media")
    return media.get_audio("recording1.wav")


# --- the maths --------------------------------------------------------------------------------


def test_distance_is_mahalanobis_to_the_nearest_class_mean_and_limit_a_validation_quantile():
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 3.0, 8)
    labels = np.repeat([0, 1], 300)
    centres = np.stack([np.zeros(8), np.full(8, 4.0)])
    train = centres[labels] + rng.normal(size=(600, 8)) * scale
    validation = centres[labels[:200]] + rng.normal(size=(200, 8)) * scale
    guard = DomainGuard()
    record = guard.fit("image", train, labels, validation, quantile=0.9)

    cov, alpha = shrunk_covariance(
        train
        - train[labels == 0].mean(0) * (labels == 0)[:, None]
        - train[labels == 1].mean(0) * (labels == 1)[:, None]
    )
    assert alpha == pytest.approx(record["shrinkage"])
    precision = np.linalg.inv(cov)
    means = np.stack([train[labels == k].mean(0) for k in (0, 1)])
    points = np.stack([validation[0], validation[-1], np.full(8, 2.0), np.full(8, 40.0)])
    expected = [min(np.sqrt((p - m) @ precision @ (p - m)) for m in means) for p in points]
    got = guard.distances("image", torch.as_tensor(points, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-3)

    val_distances = guard.distances("image", torch.as_tensor(validation, dtype=torch.float32))
    assert guard.limit("image") == pytest.approx(
        float(np.quantile(val_distances.numpy(), 0.9)), rel=1e-5
    )
    assert record["familiar_share_validation"] == pytest.approx(0.9, abs=0.01)
    far = guard.check("image", torch.full((3, 8), 40.0))
    assert far.familiar is False and far.distance > far.limit
    near = guard.check("image", torch.as_tensor(validation[:5], dtype=torch.float32))
    assert near.familiar is True
    assert not guard.fitted("audio") and guard.check("audio", torch.zeros(1, 8)).familiar is None


def test_identical_samples_still_give_an_invertible_covariance():
    """One clip per class: every centred row is zero, and the fit must not fail."""
    cov, alpha = shrunk_covariance(np.zeros((4, 3)))
    assert alpha == 1.0
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    np.linalg.inv(cov)


def test_shrinkage_keeps_a_few_samples_in_many_dimensions_invertible():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 40))  # fewer samples than dimensions: the plain covariance is singular
    cov, alpha = shrunk_covariance(x - x.mean(0))
    assert 0 < alpha <= 1
    assert np.linalg.cond(cov) < 1e3


# --- storage and verdicts on a tiny detector -----------------------------------------------------


@pytest.fixture(scope="module")
def photo_and_voice():
    return mf.face_photo(), mf.voice_like(seconds=3.0, seed=1)


def _embeddings(detector: Detector, photo: np.ndarray, wave: np.ndarray):
    """The detector's own embeddings of a photo (centre crop) and of a voice's windows."""
    with torch.inference_mode():
        crops = np.stack([faces.center_crop_face(photo)])
        image = detector.model.encode_image(features.faces_to_tensor(crops)).embedding
        windows = features.waves_to_windows(wave, features.audio_windows(wave))
        audio = detector.model.encode_audio(windows).embedding
    return image, audio


def _fit_around(guard: DomainGuard, modality: str, rows: torch.Tensor, offset: float) -> None:
    """Fit a guard on jittered copies of an input's own embedding rows, moved by ``offset``
    in every dimension (0: the input is what the guard was fitted on, so it is familiar)."""
    rng = np.random.default_rng(2)
    rows = rows.numpy()
    picked = rows[rng.integers(len(rows), size=200)] + offset
    points = picked + rng.normal(size=picked.shape) * 0.05 * (rows.std() + 1e-3)
    guard.fit(modality, points[:160], np.repeat([0, 1], 80), points[160:])


@pytest.fixture()
def guarded(photo_and_voice) -> Detector:
    """A tiny detector whose guard knows this face but has never seen anything like this voice."""
    torch.manual_seed(0)
    detector = Detector(**TINY_ARCH)
    image, audio = _embeddings(detector, *photo_and_voice)
    _fit_around(detector.model.domain_guard, "image", image, 0.0)
    _fit_around(detector.model.domain_guard, "audio", audio, 5.0)
    return detector


def test_unfamiliar_voice_makes_the_label_uncertain_and_warn_keeps_the_verdict(
    guarded, photo_and_voice
):
    photo, wave = photo_and_voice
    pred = guarded.predict(image=photo, audio=wave, detect_faces=False)
    assert pred.label == "uncertain"
    assert pred.domain["image"]["familiar"] is True
    assert pred.domain["audio"]["familiar"] is False
    assert pred.domain["audio"]["distance"] > pred.domain["audio"]["limit"]
    assert pred.to_dict()["domain"] == pred.domain
    assert any("the voice is unlike anything this model was trained on" in w for w in pred.warnings)
    assert not any("the face is unlike" in w for w in pred.warnings)
    assert "unlike the training data: audio" in pred.summary()

    kept = guarded.predict(image=photo, audio=wave, detect_faces=False, on_unfamiliar="warn")
    assert kept.label == ("fake" if kept.fake_probability >= kept.threshold else "real")
    assert kept.fake_probability == pytest.approx(pred.fake_probability)
    assert any("the voice is unlike" in w and "labelled uncertain" not in w for w in kept.warnings)
    with pytest.raises(Exception, match="on_unfamiliar"):
        guarded.predict(image=photo, audio=wave, on_unfamiliar="ignore")


def test_a_familiar_input_keeps_its_verdict(photo_and_voice):
    torch.manual_seed(0)
    detector = Detector(**TINY_ARCH)
    image, audio = _embeddings(detector, *photo_and_voice)
    _fit_around(detector.model.domain_guard, "image", image, 0.0)
    _fit_around(detector.model.domain_guard, "audio", audio, 0.0)
    pred = detector.predict(image=photo_and_voice[0], audio=photo_and_voice[1], detect_faces=False)
    assert pred.label in ("real", "fake")
    assert pred.domain["image"]["familiar"] and pred.domain["audio"]["familiar"]


def test_saved_and_reloaded_model_keeps_its_guard(guarded, photo_and_voice, tmp_path):
    guarded.save_pretrained(tmp_path)
    loaded = Detector.from_pretrained(tmp_path)
    for modality in ("image", "audio"):
        assert loaded.model.domain_guard.limit(modality) == pytest.approx(
            guarded.model.domain_guard.limit(modality)
        )
    photo, wave = photo_and_voice
    before = guarded.predict(image=photo, audio=wave, detect_faces=False)
    after = loaded.predict(image=photo, audio=wave, detect_faces=False)
    assert after.domain == before.domain and after.label == "uncertain"


def test_a_model_saved_without_a_guard_loads_and_says_it_cannot_tell(tmp_path, photo_and_voice):
    torch.manual_seed(0)
    Detector(**TINY_ARCH).save_pretrained(tmp_path)
    loaded = Detector.from_pretrained(tmp_path)
    pred = loaded.predict(image=photo_and_voice[0], audio=photo_and_voice[1], detect_faces=False)
    assert pred.domain == {
        m: {"distance": None, "limit": None, "familiar": None} for m in ("image", "audio")
    }
    assert any("no unfamiliar-input guard" in w and "cannot tell" in w for w in pred.warnings)
    assert pred.label in ("real", "fake")


# --- the bundled starter on real and synthetic media ----------------------------------------------


@pytest.fixture(scope="module")
def starter() -> Detector:
    return Detector.starter()


def test_starter_has_a_guard(starter):
    assert all(starter.model.domain_guard.fitted(m) for m in ("image", "audio"))
    assert starter.metadata["domain_guard"]["quantile"] == 0.99


@pytest.mark.parametrize("photo", [mf.face_photo, mf.astronaut], ids=["grace-hopper", "astronaut"])
def test_starter_flags_a_real_photo_with_real_speech(starter, photo):
    pred = starter.predict(image=photo(), audio=real_speech())
    assert pred.label == "uncertain"
    assert pred.domain["audio"]["familiar"] is False
    assert pred.domain["image"]["familiar"] is False
    assert 0.0 <= pred.fake_probability <= 1.0


def test_starter_flags_a_real_video_with_real_speech(starter, tmp_path):
    speech = decode.load_audio(real_speech(), sample_rate=16000)
    seconds = len(speech) / 16000
    frames = mf.face_frames(round(seconds * 25), size=(640, 360))
    path = mf.write_video(tmp_path / "talk.mp4", frames, fps=25, audio=speech)
    pred = starter.predict(str(path), num_frames=6)
    assert pred.label == "uncertain"
    assert pred.domain["audio"]["familiar"] is False


def test_starter_finds_its_own_kind_of_clip_familiar(starter, tmp_path):
    from mmdeepfake.data.synth import make_clip

    path = make_clip(tmp_path / "synthetic.mp4", "happy", "happy", seed=20240917)
    pred = starter.predict(str(path), num_frames=6)
    assert pred.domain["image"]["familiar"] and pred.domain["audio"]["familiar"]
    assert pred.label in ("real", "fake")


# --- training, evaluation and the fitting script --------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny detector trained for one epoch on a small synthetic dataset (local folders)."""
    from mmdeepfake.data.synth import generate_dataset
    from mmdeepfake.train.config import TrainConfig
    from mmdeepfake.train.trainer import train

    root = tmp_path_factory.mktemp("guard-train")
    generate_dataset(open_storage(root / "data"), clips=24, seed=5, frames_per_clip=2)
    config = TrainConfig(
        data_dir=str(root / "data"),
        prefix="",
        output=str(root / "out"),
        run_id="guard",
        model=TINY_ARCH,
        epochs=1,
        batch_size=8,
        plots=False,
        prefetch=4,
    )
    result = train(config, progress=False)
    return root, result


def test_training_fits_the_guard_and_reports_the_familiar_share(trained):
    root, _ = trained
    summary = json.loads((root / "out" / "guard" / "logs" / "summary.json").read_text())
    shares = summary["domain_guard"]["familiar_share"]
    assert set(shares) == {"train", "validate"}
    # The limit is the 99th percentile of 8 validation distances: at most one lies beyond it.
    assert all(7 / 8 <= shares[split][m] <= 1.0 for split in shares for m in ("image", "audio"))
    detector = Detector.from_pretrained(root / "out" / "guard" / "models" / "best")
    assert all(detector.model.domain_guard.fitted(m) for m in ("image", "audio"))
    assert detector.model_info.synthetic
    assert set(detector.metadata["modality_calibration"]) == {"image", "audio"}


def test_evaluation_reports_the_familiar_share(trained, tmp_path):
    from mmdeepfake.domain import embed_split, fit_detector_guard
    from mmdeepfake.evaluate.evaluator import evaluate

    root, _ = trained
    detector = Detector.from_pretrained(root / "out" / "guard" / "models" / "best")
    storage = open_storage(root / "data")
    from mmdeepfake.data.layout import scan_dataset

    index = scan_dataset(storage, "")
    train, test = (embed_split(detector, storage, index, s) for s in ("train", "test"))
    # Limits at the median of the test split's distances: about half of it is unfamiliar.
    fit_detector_guard(detector, train, test, quantile=0.5)
    guard = detector.model.domain_guard
    expected = {
        m: float((guard.distances(m, getattr(test, m)) <= guard.limit(m)).float().mean())
        for m in ("image", "audio")
    }
    assert all(0.3 <= share <= 0.7 for share in expected.values())
    result = evaluate(
        detector,
        data_dir=str(root / "data"),
        prefix="",
        split="test",
        output=str(tmp_path / "eval"),
    )
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["domain"]["guard"] is True
    for m in ("image", "audio"):
        assert metrics["domain"][m]["familiar_share"] == pytest.approx(expected[m])
    assert metrics["domain"] == result.summary["domain"]


def test_fit_script_gives_a_saved_detector_its_guard(trained, tmp_path):
    root, _ = trained
    torch.manual_seed(1)
    Detector(**TINY_ARCH).save_pretrained(tmp_path / "plain")
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "fit_domain_guard.py"),
            str(tmp_path / "plain"),
            "--data",
            str(root / "data"),
            "--out",
            str(tmp_path / "guarded"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    detector = Detector.from_pretrained(tmp_path / "guarded")
    assert all(detector.model.domain_guard.fitted(m) for m in ("image", "audio"))
    card = (tmp_path / "guarded" / "README.md").read_text()
    assert "## Unfamiliar input" in card and "familiar share" in card
