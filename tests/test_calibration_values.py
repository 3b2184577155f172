"""Calibration helpers against hand-computed values: the defaults users get, the edges of the
temperature search, the boundaries of abstention and binning, and the exact error messages.

Complements ``test_evaluate_metrics.py`` (which checks the formulas on typical inputs); the
cases here are the ones where a one-character change to ``calibration.py`` would otherwise go
unseen (``make mutate MODULES=calibration``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from mmdeepfake import calibration as C


def _nll(z, y, t):
    p = 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float) / t))
    y = np.asarray(y, dtype=float)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


# --- inputs ------------------------------------------------------------------------------------


def test_column_shaped_inputs_are_flattened_not_broadcast():
    z = np.array([[2.0], [-1.0], [0.5]])
    y = np.array([1, 0, 0])
    assert C.binary_nll(z, y) == pytest.approx(_nll([2.0, -1.0, 0.5], y, 1.0))
    assert C.binary_nll([2.0, -1.0, 0.5], y.reshape(3, 1)) == pytest.approx(
        _nll([2.0, -1.0, 0.5], y, 1.0)
    )


@pytest.mark.parametrize(
    ("values", "labels", "message"),
    [
        ([0.1, 0.2], [0], "got 2 values for 1 labels; pass one per label"),
        ([0.1, 0.2], [0, 2], "labels must hold only 0 (real) and 1 (fake)"),
        (
            [0.1, math.nan],
            [0, 1],
            "values contain NaN or infinite numbers; check the model outputs",
        ),
    ],
)
def test_bad_inputs_are_refused_with_the_message_a_user_reads(values, labels, message):
    with pytest.raises(ValueError) as info:
        C.binary_nll(values, labels)
    assert str(info.value) == message


def test_zero_bins_are_refused_and_one_bin_is_allowed():
    with pytest.raises(ValueError) as info:
        C.reliability_bins([0.2], [0], n_bins=0)
    assert str(info.value) == "n_bins must be at least 1"
    (only,) = C.reliability_bins([0.2, 0.9], [0, 1], n_bins=1)
    assert (only.lower, only.upper, only.count) == (0.0, 1.0, 2)
    assert only.mean_probability == pytest.approx(0.55)
    assert only.fraction_fake == pytest.approx(0.5)


# --- negative log-likelihood and temperature ---------------------------------------------------


def test_binary_nll_defaults_to_temperature_one():
    z, y = [1.5, -0.5, 3.0], [1, 1, 0]
    assert C.binary_nll(z, y) == pytest.approx(_nll(z, y, 1.0))
    assert C.binary_nll(z, y, 2.0) == pytest.approx(_nll(z, y, 2.0))


def test_nothing_to_fit_gives_temperature_one():
    assert C.fit_temperature([0.0, 0.0, 0.0], [0, 1, 1]) == 1.0
    assert C.fit_temperature([], []) == 1.0


def test_a_single_sample_is_fitted_not_skipped():
    # One correct, confident logit: the likelihood improves as T shrinks, down to the bound.
    assert C.fit_temperature([2.0], [1]) == pytest.approx(math.exp(-C.LOG_T_BOUND), rel=1e-6)


def test_separable_data_fits_the_lower_bound_and_inverted_data_the_upper():
    z = np.array([-3.0, -1.0, 1.0, 3.0])
    y = np.array([0, 0, 1, 1])
    assert C.fit_temperature(z, y) == pytest.approx(math.exp(-C.LOG_T_BOUND), rel=1e-6)
    # Every logit on the wrong side: the flattest probabilities (largest T) are least wrong.
    assert C.fit_temperature(z, 1 - y) == pytest.approx(math.exp(C.LOG_T_BOUND), rel=1e-6)


# --- reliability and ECE -----------------------------------------------------------------------


def test_default_binning_is_fifteen_equal_bins():
    bins = C.reliability_bins([0.1, 0.9], [0, 1])
    assert len(bins) == 15
    assert [b.lower for b in bins[:3]] == pytest.approx([0.0, 1 / 15, 2 / 15])
    assert [b.upper for b in bins[:3]] == pytest.approx([1 / 15, 2 / 15, 3 / 15])
    assert bins[-1].upper == 1.0


def test_bin_edges_and_contents_for_four_bins():
    bins = C.reliability_bins([0.1, 0.3, 0.3, 0.8, 1.0], [0, 1, 0, 1, 1], n_bins=4)
    edges = [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]
    assert [(b.lower, b.upper) for b in bins] == edges
    assert [b.count for b in bins] == [1, 2, 0, 2]
    assert bins[1].fraction_fake == 0.5
    assert bins[3].mean_probability == pytest.approx(0.9)
    assert math.isnan(bins[2].mean_probability) and math.isnan(bins[2].fraction_fake)


def test_ece_default_uses_fifteen_bins():
    # 0.3 and 0.32 share a bin of width 1/15 but not of width 1/16 (edge at 0.3125).
    p, y = [0.3, 0.32], [1, 0]
    assert C.expected_calibration_error(p, y) == pytest.approx(
        C.expected_calibration_error(p, y, n_bins=15)
    )
    assert C.expected_calibration_error(p, y, n_bins=15) != pytest.approx(
        C.expected_calibration_error(p, y, n_bins=16)
    )


def test_empty_inputs_give_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(C.expected_calibration_error([], []))
        assert all(math.isnan(b.mean_probability) for b in C.reliability_bins([], [], 3))
        (row,) = C.abstention_table([], [], bounds=(0.6,))
        assert math.isnan(row.coverage) and math.isnan(row.accuracy) and row.kept == 0
        summary = C.calibration_summary([], [], 1.0)
        assert math.isnan(summary["nll_before"]) and math.isnan(summary["nll_after"])


# --- abstention --------------------------------------------------------------------------------


def test_a_probability_at_the_threshold_is_called_fake():
    (row,) = C.abstention_table([0.5, 0.5], [1, 0], bounds=(0.5,), threshold=0.5)
    assert row.accuracy == 0.5  # the fake one is right, the real one wrong
    (row,) = C.abstention_table([0.7], [1], bounds=(0.5,), threshold=0.7)
    assert row.accuracy == 1.0


def test_a_confidence_equal_to_the_bound_is_kept():
    (row,) = C.abstention_table([0.8, 0.2, 0.6], [1, 0, 0], bounds=(0.8,))
    assert (row.kept, row.abstained) == (2, 1)
    assert row.coverage == pytest.approx(2 / 3)
    assert row.accuracy == 1.0


def test_nothing_kept_gives_nan_accuracy_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (row,) = C.abstention_table([0.55, 0.45], [1, 0], bounds=(0.9,))
    assert row.kept == 0 and row.coverage == 0.0 and math.isnan(row.accuracy)


# --- summary -----------------------------------------------------------------------------------


def test_calibration_summary_values_and_binning():
    z = np.array([2.0, -1.0, 0.3, 1.2, -2.5, 0.1])
    y = np.array([1, 0, 0, 1, 0, 1])
    t = 1.7
    summary = C.calibration_summary(z, y, t, bounds=(0.6,), n_bins=4)
    assert summary["temperature"] == t
    assert summary["nll_before"] == pytest.approx(_nll(z, y, 1.0))
    assert summary["nll_after"] == pytest.approx(_nll(z, y, t))
    before, after = C.sigmoid(z), C.sigmoid(z / t)
    assert summary["ece_before"] == pytest.approx(C.expected_calibration_error(before, y, 4))
    assert summary["ece_after"] == pytest.approx(C.expected_calibration_error(after, y, 4))
    assert summary["ece_before"] != pytest.approx(C.expected_calibration_error(before, y, 15))
    default = C.calibration_summary(z, y, t)
    assert default["ece_after"] == pytest.approx(C.expected_calibration_error(after, y, 15))
    assert default["ece_after"] != pytest.approx(C.expected_calibration_error(after, y, 16))
    assert summary["abstention"][0]["kept"] == int((np.maximum(after, 1 - after) >= 0.6).sum())


def test_sigmoid_of_whole_numbers_is_a_probability():
    np.testing.assert_allclose(
        C.sigmoid([0, 2, -2]), [0.5, 1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2))]
    )
