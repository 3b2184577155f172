"""Every field of a Prediction that a caller reads, against the values it must hold.

The verdict tests check the label and the probability; these check the rest of what
``Prediction.to_dict()`` hands a user (and the batch engines write): the per-modality scores and
fusion weights as the model computed them, the emotions averaged over the right axis, the
duration to the millisecond, the source, the model, the fusion, the timings, and the warnings
that qualify a one-modality verdict.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from mmdeepfake import Detector
from mmdeepfake.domain import DomainCheck
from mmdeepfake.labels import EMOTIONS
from mmdeepfake.pipeline import INFORMATIVE_AUC, _Request
from mmdeepfake.testing import media as mf
from tiny_models import TINY_ARCH

# 19,753 samples at 16 kHz: 1.2345625 s, so rounding to 3 places (1.235) and to 4 (1.2346) differ.
ODD_LENGTH = 19_753
# Each emotion's probability is reported to 5 places, so seven of them sum to 1 within 7 * 0.5e-5.
ROUNDED_SUM_TOLERANCE = len(EMOTIONS) * 0.5e-5 + 1e-9


def only_one_analysed(what: str, reason: str) -> str:
    """The warning, word for word, that a user reads when one modality is scored alone."""
    return (
        f"only the {what} was analysed ({reason}): the emotion-consistency cue, which compares "
        f"face and voice, was unavailable, so the verdict comes from the {what}-only head"
    )


@pytest.fixture(scope="module")
def adaptive() -> Detector:
    """A tiny detector whose fusion reports its per-modality weights."""
    torch.manual_seed(0)
    return Detector(fusion="adaptive", **TINY_ARCH)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return mf.face_video(tmp_path_factory.mktemp("fields") / "clip.mp4", seconds=2.0)


def _record(detector: Detector, monkeypatch, method: str = "fuse") -> list:
    """Record every output of one of the model's steps (``fuse``, ``encode_image``,
    ``head_logit``, ...) during a prediction."""
    outputs: list = []
    step = getattr(detector.model, method)

    def recording(*args, **kwargs):
        out = step(*args, **kwargs)
        outputs.append(out)
        return out

    monkeypatch.setattr(detector.model, method, recording)
    return outputs


def _mean_emotions(logits: torch.Tensor) -> dict[str, float]:
    """Per-row emotion probabilities averaged over rows, as a Prediction reports them."""
    probs = torch.softmax(logits.float(), dim=-1).mean(dim=0)
    return {name: float(p) for name, p in zip(EMOTIONS, probs)}


NO_GUARD = (
    "this model has no unfamiliar-input guard (it was saved without one): it cannot tell "
    "when an input is unlike its training data; fit one with scripts/fit_domain_guard.py"
)
UNJUDGED = {"distance": None, "limit": None, "familiar": None}


def test_fused_prediction_reports_the_models_own_scores_and_weights(adaptive, clip, monkeypatch):
    outputs = _record(adaptive, monkeypatch)
    pred = adaptive.predict(str(clip))
    assert outputs, "the fusion never ran"
    logits = {
        name: torch.cat([o.modality_logits[name] for o in outputs]).float()
        for name in outputs[0].modality_logits
    }
    weights = torch.cat([o.fusion_weights for o in outputs]).float()
    assert len(weights) == len(pred.segments) > 1  # a mean over segments, not over modalities
    assert set(pred.modality_scores) == {"image", "audio"}
    for name, value in logits.items():
        assert pred.modality_scores[name] == pytest.approx(
            float(torch.sigmoid(value.mean())), abs=1e-6
        )
    mean = weights.mean(dim=0)
    assert pred.fusion_weights == pytest.approx({"image": float(mean[0]), "audio": float(mean[1])})
    assert pred.fusion == "adaptive"
    assert pred.source == str(clip)
    assert pred.model == adaptive.model_info
    assert pred.modalities == ["image", "audio"]
    assert "fusion" in pred.timings and "total" in pred.timings
    assert isinstance(pred.duration, float) and pred.duration == pytest.approx(2.0, abs=0.05)
    for segment in pred.segments:
        assert set(segment.face_emotions) == set(segment.voice_emotions) == set(EMOTIONS)
        assert sum(segment.face_emotions.values()) == pytest.approx(1.0, abs=ROUNDED_SUM_TOLERANCE)
        assert sum(segment.voice_emotions.values()) == pytest.approx(1.0, abs=ROUNDED_SUM_TOLERANCE)


def test_fused_prediction_explains_its_verdict_with_the_models_own_outputs(
    adaptive, clip, monkeypatch
):
    fused = _record(adaptive, monkeypatch)
    encoded = _record(adaptive, monkeypatch, "encode_image")
    pred = adaptive.predict(str(clip))
    consistency = torch.cat([o.consistency for o in fused]).float()
    voice_logits = torch.cat([o.voice_emotion_logits for o in fused])
    face_logits = torch.cat([o.emotion_logits for o in encoded])
    assert len(face_logits) > 1 and len(voice_logits) == len(pred.segments) > 1
    assert pred.consistency == pytest.approx(float(consistency.mean()), abs=1e-6)
    assert [s.consistency for s in pred.segments] == pytest.approx(consistency.tolist(), abs=1e-6)
    assert pred.face_emotions == pytest.approx(_mean_emotions(face_logits), abs=1e-5)
    assert pred.voice_emotions == pytest.approx(_mean_emotions(voice_logits), abs=1e-5)
    assert pred.domain == {"image": UNJUDGED, "audio": UNJUDGED}
    assert NO_GUARD in pred.warnings
    assert pred.threshold == 0.5
    assert pred.label == ("fake" if pred.fake_probability >= 0.5 else "real")
    p = pred.fake_probability
    assert adaptive.predict(str(clip), threshold=max(p - 0.01, 0.0)).label == "fake"
    assert adaptive.predict(str(clip), threshold=min(p + 0.01, 1.0)).label == "real"


def test_a_voice_alone_is_scored_by_its_head_with_its_own_temperature_and_auc(monkeypatch):
    """The voice head's own calibration (temperature, validation AUC) is used, not the model's."""
    torch.manual_seed(0)
    detector = Detector(fusion="mid", **TINY_ARCH)
    detector.with_config(
        metadata={
            "modality_calibration": {"audio": {"temperature": 4.0, "val_auc": 0.55}},
            "val_metrics": {"val_auc_audio": 0.95},
        }
    )
    heads = _record(detector, monkeypatch, "head_logit")
    encoded = _record(detector, monkeypatch, "encode_audio")
    pred = detector.predict(audio=mf.voice_like(seconds=2.0), threshold=0.3)
    (logits,) = heads
    (out,) = encoded
    expected = float(torch.sigmoid(logits.float().mean() / 4.0))
    assert pred.fake_probability == pytest.approx(expected, abs=1e-6)
    assert expected != pytest.approx(float(torch.sigmoid(logits.float().mean())), abs=1e-4)
    assert pred.modality_scores == {"audio": pred.fake_probability}
    assert pred.threshold == 0.3
    assert pred.label == ("fake" if pred.fake_probability >= 0.3 else "real")
    assert pred.voice_emotions == pytest.approx(_mean_emotions(out.emotion_logits), abs=1e-5)
    assert pred.face_emotions == {} and pred.segments == [] and pred.faces == []
    assert pred.consistency is None
    assert pred.domain == {"audio": UNJUDGED}
    assert (
        "this model's voice-only head scored ROC-AUC 0.55 on its validation split "
        "(0.5 is chance): its one-modality verdict is not informative"
    ) in pred.warnings


def test_a_face_alone_reports_face_emotions_and_no_voice_emotions(adaptive, monkeypatch):
    encoded = _record(adaptive, monkeypatch, "encode_image")
    pred = adaptive.predict(image=mf.face_photo(), detect_faces=False)
    (out,) = encoded
    assert pred.face_emotions == pytest.approx(_mean_emotions(out.emotion_logits), abs=1e-5)
    assert pred.voice_emotions == {} and pred.segments == []
    assert pred.modalities == ["image"] and set(pred.modality_scores) == {"image"}
    assert pred.domain == {"image": UNJUDGED}


def test_a_video_missing_one_modality_says_which_and_why(adaptive, tmp_path):
    muted = mf.face_video(tmp_path / "muted.mp4", seconds=2.0, with_audio=False)
    pred = adaptive.predict(str(muted))
    assert only_one_analysed("face", "the video has no sound track") in pred.warnings
    faceless = mf.write_video(
        tmp_path / "faceless.mp4",
        np.zeros((25, 240, 320, 3), dtype=np.uint8),
        fps=25,
        audio=mf.voice_like(seconds=1.0),
    )
    pred = adaptive.predict(str(faceless))
    assert pred.modalities == ["audio"]
    assert only_one_analysed("voice", "no face was found") in pred.warnings


def test_a_voice_alone_reports_its_duration_to_the_millisecond(adaptive):
    wave = mf.voice_like(seconds=2.0)[:ODD_LENGTH]
    pred = adaptive.predict(audio=wave)
    assert pred.duration == 1.235 and isinstance(pred.duration, float)
    assert set(pred.voice_emotions) == set(EMOTIONS)  # the mean over windows, one per emotion
    assert sum(pred.voice_emotions.values()) == pytest.approx(1.0, abs=ROUNDED_SUM_TOLERANCE)
    assert pred.fusion == "adaptive" and pred.model == adaptive.model_info
    assert "fusion" in pred.timings
    assert only_one_analysed("voice", "no face image was given") in pred.warnings


def test_a_face_alone_from_a_muted_video_reports_the_videos_duration(adaptive, tmp_path):
    muted = mf.face_video(tmp_path / "muted.mp4", seconds=2.0, with_audio=False)
    pred = adaptive.predict(str(muted))
    assert pred.modalities == ["image"]
    assert isinstance(pred.duration, float) and pred.duration == pytest.approx(2.0, abs=0.05)
    assert pred.source == str(muted)
    assert pred.fusion == "adaptive" and pred.model == adaptive.model_info
    assert "fusion" in pred.timings
    photo = adaptive.predict(image=mf.face_photo(), detect_faces=False)
    assert only_one_analysed("face", "no voice was given") in photo.warnings


def test_a_face_alone_reports_a_videos_duration_to_the_millisecond(adaptive, tmp_path):
    # 9 frames at 7 fps: 1.285714... s, so rounding to 3 places (1.286) and to 4 (1.2857) differ.
    muted = mf.face_video(tmp_path / "odd.mp4", seconds=9 / 7, fps=7, with_audio=False)
    pred = adaptive.predict(str(muted))
    assert pred.modalities == ["image"]
    assert pred.duration == 1.286


def test_a_one_modality_verdict_checks_its_own_embedding_against_the_guard(monkeypatch):
    """The voice-only path judges the voice's windows with the voice's guard: an unfitted or
    mismatched check would report no distance, or a distance to the wrong points."""
    torch.manual_seed(0)
    detector = Detector(fusion="mid", **TINY_ARCH)
    embeddings: list[torch.Tensor] = []
    encode_audio = detector.model.encode_audio

    def recording_encode_audio(waves: torch.Tensor):
        out = encode_audio(waves)
        embeddings.append(out.embedding.detach().clone())
        return out

    monkeypatch.setattr(detector.model, "encode_audio", recording_encode_audio)
    wave = mf.voice_like(seconds=2.0)
    rng = np.random.default_rng(0)
    width = detector.model.fusion.audio_dim
    points = rng.normal(size=(200, width)) + 3.0  # far from the voice's own embeddings
    guard = detector.model.domain_guard
    guard.fit("audio", points[:160], np.repeat([0, 1], 80), points[160:])
    pred = detector.predict(audio=wave)
    (embedding,) = embeddings
    expected = guard.check("audio", embedding)
    assert expected.distance is not None and expected.familiar is False
    assert pred.domain == {"audio": expected.to_dict()}
    assert pred.label == "uncertain"


@pytest.mark.parametrize(
    ("auc", "warned"), [(0.5, True), (INFORMATIVE_AUC - 1e-3, True), (INFORMATIVE_AUC, False)]
)
def test_a_one_modality_verdict_says_when_its_head_is_not_informative(auc, warned):
    torch.manual_seed(0)
    detector = Detector(fusion="mid", **TINY_ARCH)
    detector.with_config(metadata={"val_metrics": {"val_auc_audio": auc}})
    pred = detector.predict(audio=mf.voice_like(seconds=2.0))
    note = (
        f"this model's voice-only head scored ROC-AUC {auc:.2f} on its validation split "
        "(0.5 is chance): its one-modality verdict is not informative"
    )
    assert (note in pred.warnings) == warned
    assert only_one_analysed("voice", "no face image was given") in pred.warnings


def test_a_fusion_without_weights_reports_none():
    torch.manual_seed(0)
    detector = Detector(fusion="mid", **TINY_ARCH)
    pred = detector.predict(image=mf.face_photo(), audio=mf.voice_like(2.0), detect_faces=False)
    assert pred.fusion_weights is None and pred.fusion == "mid"


def _request(
    on_unfamiliar: str = "uncertain", threshold: float = 0.5, abstain_below: float | None = None
) -> _Request:
    return _Request(threshold, abstain_below, on_unfamiliar, None, time.perf_counter())


FAMILIAR = {"audio": DomainCheck(distance=1.0, limit=10.0, familiar=True)}


@pytest.mark.parametrize("on_unfamiliar", ["uncertain", "warn"])
def test_an_unfamiliar_input_is_named_and_labelled_as_asked(adaptive, on_unfamiliar):
    warnings: list[str] = []
    far = {"audio": DomainCheck(distance=20.0, limit=10.0, familiar=False)}
    label = adaptive.pipeline._verdict(0.9, far, _request(on_unfamiliar), warnings)
    unfamiliar = [w for w in warnings if "unlike anything this model was trained on" in w]
    said = (
        "the voice is unlike anything this model was trained on (distance 20.0, limit 10.0): "
        "its verdict on this input is not evidence"
    )
    if on_unfamiliar == "uncertain":
        said += "; labelled uncertain, with the probability still reported"
    assert unfamiliar == [said]
    assert label == ("uncertain" if on_unfamiliar == "uncertain" else "fake")


def test_a_model_without_a_guard_says_so_and_how_to_fit_one(adaptive):
    warnings: list[str] = []
    unguarded = {"audio": DomainCheck(distance=None, limit=None, familiar=None)}
    label = adaptive.pipeline._verdict(0.9, unguarded, _request(), warnings)
    assert label == "fake"
    assert warnings[-1] == (
        "this model has no unfamiliar-input guard (it was saved without one): it cannot tell "
        "when an input is unlike its training data; fit one with scripts/fit_domain_guard.py"
    )


@pytest.mark.parametrize(
    ("fake_probability", "label"), [(0.7, "fake"), (0.7 - 1e-9, "real"), (0.9, "fake")]
)
def test_a_probability_at_the_threshold_is_fake(adaptive, fake_probability, label):
    verdict = adaptive.pipeline._verdict(fake_probability, FAMILIAR, _request(threshold=0.7), [])
    assert verdict == label


@pytest.mark.parametrize(
    ("fake_probability", "label"), [(0.75, "fake"), (0.25, "real"), (0.74, "uncertain")]
)
def test_a_confidence_at_the_abstention_bound_keeps_its_verdict(adaptive, fake_probability, label):
    """Abstention is strict: max(p, 1 - p) = 0.75 against a bound of 0.75 is confident enough."""
    request = _request(abstain_below=0.75)
    assert adaptive.pipeline._verdict(fake_probability, FAMILIAR, request, []) == label


def test_segment_times_and_duration_are_rounded_to_the_millisecond(adaptive):
    # Two windows of 32,512 samples: the second is aligned to the end, at 19,753 samples.
    length = 32_512 + ODD_LENGTH
    pred = adaptive.predict(
        image=mf.face_photo(), audio=mf.voice_like(seconds=4.0)[:length], detect_faces=False
    )
    times = [(segment.start, segment.end) for segment in pred.segments]
    assert times == [(0.0, 2.032), (1.235, 3.267)]  # 1.2345625 s and 3.2665625 s, rounded
    assert pred.duration == 3.267
