"""Properties of the pure functions, checked on inputs Hypothesis generates.

Each property is a statement a caller relies on whatever the input: resampling keeps the length
and a tone's frequency, analysis windows cover the recording, metrics agree with their
definitions and with scikit-learn, NMS never keeps two boxes that overlap past the threshold.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmdeepfake import metrics as M
from mmdeepfake.calibration import confidence, fit_temperature, sigmoid
from mmdeepfake.fusion import consistency_from_logits
from mmdeepfake.media import features
from mmdeepfake.media.decode import resample
from mmdeepfake.media.faces import box_iou, nms

# Generated inputs are small; a few dozen examples per property keep the file fast on 2 cores.
FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- resampling and windowing --------------------------------------------------------------------

RATES = st.sampled_from([8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000])


@FAST
@given(orig=RATES, new=RATES, n=st.integers(0, 5000))
def test_resampled_length_is_the_duration_at_the_new_rate(orig, new, n):
    wave = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    out = resample(wave, orig, new)
    assert out.dtype == np.float32
    assert len(out) == (n if orig == new else math.ceil(n * new / orig))


@FAST
@given(orig=RATES, freq=st.floats(200.0, 3000.0))
def test_resampling_to_16k_keeps_a_tone_at_its_frequency(orig, freq):
    t = np.arange(orig // 2) / orig  # half a second
    out = resample(np.sin(2 * np.pi * freq * t).astype(np.float32), orig, 16000)
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak = np.argmax(spectrum) * 16000 / len(out)
    assert abs(peak - freq) <= 2 * 16000 / len(out)
    # Amplitude kept in the pass band (the tone is far below 8 kHz).
    middle = out[len(out) // 4 : 3 * len(out) // 4]
    assert np.abs(middle).max() == pytest.approx(1.0, abs=0.05)


@FAST
@given(
    length=st.integers(1, 200_000),
    window=st.integers(1, 40_000),
    hop=st.one_of(st.none(), st.integers(1, 40_000)),
)
def test_audio_windows_cover_the_recording_with_full_windows(length, window, hop):
    windows = features.audio_windows(np.zeros(length), window_samples=window, hop_samples=hop)
    if length <= window:
        assert windows == [(0, length)]
        return
    assert windows[0][0] == 0 and windows[-1][1] == length
    assert all(end - start == window for start, end in windows)
    starts = [start for start, _ in windows]
    assert starts == sorted(set(starts))
    # No gap between consecutive windows when the hop is at most the window.
    if (hop or window) <= window:
        assert all(b[0] <= a[1] for a, b in itertools.pairwise(windows))


@FAST
@given(length=st.integers(1, 3000), window=st.integers(1, 1000))
def test_windows_stack_the_samples_they_name(length, window):
    wave = np.arange(1, length + 1, dtype=np.float32)
    spans = features.audio_windows(wave, window_samples=window)
    stacked = features.waves_to_windows(wave, spans, window_samples=window).numpy()
    assert stacked.shape == (len(spans), window)
    for row, (start, end) in zip(stacked, spans):
        piece = wave[start:end]
        offset = (window - len(piece)) // 2
        np.testing.assert_array_equal(row[offset : offset + len(piece)], piece)
        assert not row[:offset].any() and not row[offset + len(piece) :].any()


# --- metrics -------------------------------------------------------------------------------------

labelled_scores = st.integers(2, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(
            st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0]), min_size=n, max_size=n
        ),
    )
)


@FAST
@given(data=labelled_scores, threshold=st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0]))
def test_headline_metrics_follow_their_definitions(data, threshold):
    y, s = np.array(data[0]), np.array(data[1])
    m = M.compute_metrics(y, s, threshold)
    pred = s >= threshold
    tp, fp = int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum())
    fn, tn = int((~pred & (y == 1)).sum()), int((~pred & (y == 0)).sum())
    assert m["confusion_matrix"] == [[tn, fp], [fn, tp]]

    def ratio(a, b):
        return a / b if b else math.nan

    for key, value in (
        ("accuracy", ratio(tp + tn, len(y))),
        ("precision", ratio(tp, tp + fp)),
        ("recall", ratio(tp, tp + fn)),
        ("specificity", ratio(tn, tn + fp)),
        ("f1", ratio(2 * tp, 2 * tp + fp + fn)),
    ):
        assert m[key] == pytest.approx(value, nan_ok=True), key


@pytest.mark.slow
@FAST
@given(data=labelled_scores)
def test_roc_auc_is_the_mann_whitney_statistic(data):
    y, s = np.array(data[0]), np.array(data[1])
    fakes, reals = s[y == 1], s[y == 0]
    if not len(fakes) or not len(reals):
        assert math.isnan(M.roc_auc(y, s))
        return
    wins = (fakes[:, None] > reals[None, :]).sum() + 0.5 * (fakes[:, None] == reals[None, :]).sum()
    assert M.roc_auc(y, s) == pytest.approx(wins / (len(fakes) * len(reals)))


@pytest.mark.slow
@FAST
@given(data=labelled_scores)
def test_average_precision_and_eer_match_sklearn_and_the_roc(data):
    sk = pytest.importorskip("sklearn.metrics")
    y, s = np.array(data[0]), np.array(data[1])
    if len(set(y.tolist())) < 2:
        return
    assert M.average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s))
    eer, threshold = M.equal_error_rate(y, s)
    fpr, tpr, _ = M.roc_curve(y, s)
    fnr = 1 - tpr
    # The EER lies between the two rates wherever they cross, and the threshold is a data score.
    assert min(np.minimum(fpr, fnr)) - 1e-12 <= eer <= max(np.maximum(fpr, fnr)) + 1e-12
    assert threshold in set(s.tolist())


@pytest.mark.slow
@FAST
@given(data=labelled_scores)
def test_ranking_metrics_ignore_monotone_rescaling(data):
    y, s = np.array(data[0]), np.array(data[1])
    squashed = sigmoid(4 * s - 2)  # strictly increasing: the ranking and ties are kept
    for metric in (M.roc_auc, M.average_precision):
        assert metric(y, squashed) == pytest.approx(metric(y, s), nan_ok=True)


@FAST
@given(logits=st.lists(st.floats(-8, 8), min_size=2, max_size=30), temperature=st.floats(0.2, 5.0))
def test_fitted_temperature_is_the_nll_minimum(logits, temperature):
    z = np.array(logits)
    y = (np.random.default_rng(len(logits)).random(z.size) < sigmoid(z / temperature)).astype(int)
    t = fit_temperature(z, y)
    assert math.exp(-4) - 1e-9 <= t <= math.exp(4) + 1e-9
    from mmdeepfake.calibration import binary_nll

    best = binary_nll(z, y, t)
    for other in (t * 0.8, t * 1.25):
        if math.exp(-4) <= other <= math.exp(4):  # the search is bounded there
            assert best <= binary_nll(z, y, other) + 1e-9
    assert (confidence(sigmoid(z / t)) >= 0.5).all()


# --- consistency ---------------------------------------------------------------------------------

emotion_logits = st.lists(st.floats(-20, 20), min_size=7, max_size=7)


@pytest.mark.slow
@FAST
@given(a=emotion_logits, b=emotion_logits)
def test_consistency_is_symmetric_bounded_and_one_on_itself(a, b):
    la, lb = torch.tensor([a]), torch.tensor([b])
    ab, ba = consistency_from_logits(la, lb), consistency_from_logits(lb, la)
    torch.testing.assert_close(ab, ba)
    assert 0.0 <= ab.item() <= 1.0
    assert consistency_from_logits(la, la).item() == pytest.approx(1.0, abs=1e-6)
    # Shifting logits does not change the distribution, so not the consistency either.
    torch.testing.assert_close(consistency_from_logits(la + 3.0, lb), ab, atol=1e-5, rtol=0)


# --- non-maximum suppression ---------------------------------------------------------------------

boxes_strategy = st.lists(
    st.tuples(
        st.integers(0, 60),
        st.integers(0, 60),
        st.integers(1, 40),
        st.integers(1, 40),
        st.floats(0.0, 1.0),
    ),
    min_size=1,
    max_size=25,
)


@pytest.mark.slow
@FAST
@given(rows=boxes_strategy, threshold=st.sampled_from([0.3, 0.5, 0.7]))
def test_nms_keeps_the_best_and_no_two_overlapping_boxes(rows, threshold):
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h, _ in rows], dtype=torch.float)
    scores = torch.tensor([score for *_, score in rows])
    keep = nms(boxes, scores, threshold)
    kept = boxes[keep]
    assert scores[keep[0]] == scores.max()
    assert (scores[keep][:-1] >= scores[keep][1:]).all()  # best first
    overlap = box_iou(kept, kept)
    overlap.fill_diagonal_(0)
    assert (overlap <= threshold).all()
    # Every dropped box overlaps a kept box with a score at least as high.
    dropped = sorted(set(range(len(rows))) - set(keep.tolist()))
    for i in dropped:
        iou = box_iou(boxes[i : i + 1], kept)[0]
        assert ((iou > threshold) & (scores[keep] >= scores[i])).any()


@FAST
@given(rows=boxes_strategy, groups=st.lists(st.integers(0, 3), min_size=25, max_size=25))
def test_nms_groups_never_suppress_each_other(rows, groups):
    boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h, _ in rows], dtype=torch.float)
    scores = torch.tensor([score for *_, score in rows])
    ids = torch.tensor(groups[: len(rows)])
    keep = set(nms(boxes, scores, 0.5, groups=ids).tolist())
    for g in ids.unique().tolist():
        members = (ids == g).nonzero().flatten()
        alone = nms(boxes[members], scores[members], 0.5)
        assert set(members[alone].tolist()) == {i for i in keep if ids[i] == g}
