"""Headline metrics at their edges: the notes a user reads, one sample, one class, all-equal
scores, no scores, column-shaped inputs, and curves computed without numpy warnings.

``test_evaluate_metrics.py`` checks the formulas on typical inputs against hand counts and
scikit-learn; these are the cases where a one-character change to ``metrics.py`` would otherwise
go unseen (``make mutate MODULES=metrics``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from mmdeepfake import metrics as M


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# --- inputs ------------------------------------------------------------------------------------


def test_column_shaped_inputs_are_flattened():
    y = np.array([0, 1, 1, 0, 1])
    s = np.array([0.1, 0.8, 0.4, 0.35, 0.9])
    flat = M.compute_metrics(y, s)
    assert M.compute_metrics(y.reshape(-1, 1), s) == flat
    assert M.compute_metrics(y, s.reshape(-1, 1)) == flat


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 2], [0.1, 0.2], "y_true must hold only 0 (real) and 1 (fake)"),
        ([0, 1], [0.1, math.inf], "scores contain NaN or infinite values; check the model outputs"),
    ],
)
def test_bad_inputs_are_refused_with_the_message_a_user_reads(labels, scores, message):
    with pytest.raises(ValueError) as info:
        M.compute_metrics(labels, scores)
    assert str(info.value) == message


def test_bad_predictions_are_refused_and_counts_are_integers():
    with pytest.raises(ValueError) as info:
        M.confusion_matrix([0, 1], [0, 0.5])
    assert str(info.value) == "y_pred must hold only 0 (real) and 1 (fake)"
    matrix = M.confusion_matrix([0, 0, 1, 1, 1], [0, 1, 1, 1, 0])
    assert matrix.dtype == np.int64
    assert matrix.tolist() == [[1, 1], [1, 2]]


def test_threshold_counts_are_integers_and_empty_input_is_empty():
    counts = M.threshold_counts([0, 1, 1, 0], [0.2, 0.9, 0.2, 0.7])
    assert counts.tp.dtype == np.int64 and counts.fp.dtype == np.int64
    assert counts.thresholds.tolist() == [0.9, 0.7, 0.2]
    assert counts.tp.tolist() == [1, 1, 2] and counts.fp.tolist() == [0, 1, 2]
    empty = M.threshold_counts([], [])
    assert empty.thresholds.size == empty.tp.size == empty.fp.size == 0
    assert (empty.n_pos, empty.n_neg) == (0, 0)


# --- notes -------------------------------------------------------------------------------------


def test_no_samples_are_noted():
    out = M.compute_metrics([], [])
    assert out["n"] == 0
    assert out["note"] == "no samples were scored"


@pytest.mark.parametrize(("label", "missing"), [(0, "fake"), (1, "real")])
def test_one_class_is_noted_with_the_missing_class(label, missing):
    out = M.compute_metrics([label, label, label], [0.9, 0.8, 0.7])
    assert out["note"] == (
        f"only one class is present (no {missing} samples): ROC-AUC, AP and EER are undefined; "
        "evaluate on a split with both real and fake samples"
    )
    assert math.isnan(out["roc_auc"]) and math.isnan(out["eer"])


def test_one_sample_of_each_class_gets_no_note():
    assert "note" not in M.compute_metrics([0, 1], [0.2, 0.8])


def test_one_fake_among_reals_and_as_many_false_as_true_calls_get_no_note():
    # One fake sample; TN == FP == 1; TP == FP would also be equal on other data.
    out = M.compute_metrics([1, 0, 0], [0.9, 0.6, 0.1])
    assert out["confusion_matrix"] == [[1, 1], [0, 1]]
    assert "note" not in out


def test_a_single_sample_is_one_class_not_no_samples():
    out = M.compute_metrics([1], [0.9])
    assert out["note"].startswith("only one class is present (no real samples)")


def test_both_notes_are_joined():
    out = M.compute_metrics([0, 0], [0.1, 0.2])
    assert out["note"] == (
        "only one class is present (no fake samples): ROC-AUC, AP and EER are undefined; "
        "evaluate on a split with both real and fake samples; "
        "no sample scored >= 0.5, so precision is undefined"
    )


def test_no_predicted_fakes_is_noted_only_then():
    out = M.compute_metrics([1, 0, 1, 0], [0.4, 0.3, 0.2, 0.1])
    assert out["note"] == "no sample scored >= 0.5, so precision is undefined"
    out = M.compute_metrics([1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1])  # TP == FP == 1
    assert "note" not in out


# --- curves at their edges ---------------------------------------------------------------------


def test_equal_scores_give_one_point_of_precision_the_fake_share(no_warnings):
    y, s = [1, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]
    assert M.average_precision(y, s) == pytest.approx(0.75)
    threshold, f1 = M.best_f1_threshold(y, s)
    assert threshold == 0.5 and f1 == pytest.approx(2 * 3 / (2 * 3 + 1))


def test_f1_is_zero_not_one_where_nothing_is_fake_or_called_fake(no_warnings):
    f1, thresholds = M.f1_curve([0, 0, 0], [0.9, 0.5, 0.1])
    assert thresholds.tolist() == [0.9, 0.5, 0.1]
    assert f1.tolist() == [0.0, 0.0, 0.0]


def test_curves_of_one_class_are_nan_without_warnings(no_warnings):
    fpr, tpr, _ = M.roc_curve([0, 0], [0.3, 0.6])
    assert np.isnan(tpr).all() and fpr.tolist() == [0.0, 0.5, 1.0]
    fpr, tpr, _ = M.roc_curve([1, 1], [0.3, 0.6])
    assert np.isnan(fpr).all() and tpr.tolist() == [0.0, 0.5, 1.0]
    precision, recall, _ = M.precision_recall_curve([0, 0], [0.3, 0.6])
    assert np.isnan(recall).all() and precision.tolist() == [0.0, 0.0]
    assert math.isnan(M.average_precision([0, 0], [0.3, 0.6]))
    assert math.isnan(M.roc_auc([1, 1], [0.3, 0.6]))


def test_average_precision_of_nothing_is_undefined():
    assert math.isnan(M.average_precision([], []))
