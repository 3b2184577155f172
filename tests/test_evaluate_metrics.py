"""Metrics, calibration, plots and the HTML report on small fixed inputs.

Expected numbers are worked out by hand in the comments, then cross-checked with scikit-learn
(used only here, never by the library).
"""

from __future__ import annotations

import io
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmdeepfake import calibration as C
from mmdeepfake import metrics as M
from mmdeepfake.reports import plots as P
from mmdeepfake.reports.report import build_report, html_table

# --- metrics: hand-computed ------------------------------------------------------------------

# A: no ties. Pairs (fake > real): 0.35>0.1, 0.8>0.1, 0.8>0.4 -> 3 of 4 -> AUC 0.75.
# PR steps: t=0.8 (P=1, R=1/2), 0.4 (P=1/2, R=1/2), 0.35 (P=2/3, R=1), 0.1 (P=1/2, R=1)
# -> AP = 1/2*1 + 1/2*2/3 = 5/6. FNR-FPR: 1, 1/2, 0 at t=0.4 -> EER 0.5 at 0.4.
# F1: 2/3, 1/2, 4/5, 2/3 -> best 0.8 at 0.35. At 0.5: TN=2 FP=0 FN=1 TP=1.
Y_A, S_A = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]

# B: ties across classes at 0.2 and 0.5. Fake scores {0.2, 0.5, 0.9}, real {0.1, 0.2, 0.5}:
# wins+ties/2 = 1.5 + 2.5 + 3 = 7 of 9. PR: t=0.9 (1, 1/3), 0.5 (2/3, 2/3), 0.2 (3/5, 1),
# 0.1 (1/2, 1) -> AP = (1 + 2/3 + 3/5)/3 = 34/45. ROC: (0,1/3), (1/3,2/3), (2/3,1):
# FNR-FPR = 0 at t=0.5 -> EER 1/3. F1: 1/2, 2/3, 3/4, 2/3 -> best 0.75 at 0.2.
Y_B, S_B = [0, 1, 0, 1, 1, 0], [0.2, 0.2, 0.5, 0.5, 0.9, 0.1]


def test_metrics_hand_computed_without_ties():
    m = M.compute_metrics(Y_A, S_A, threshold=0.5)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["average_precision"] == pytest.approx(5 / 6)
    assert m["eer"] == pytest.approx(0.5)
    assert m["eer_threshold"] == pytest.approx(0.4)
    assert m["best_f1_threshold"] == pytest.approx(0.35)
    assert m["best_f1"] == pytest.approx(0.8)
    assert m["confusion_matrix"] == [[2, 0], [1, 1]]
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(1.0)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["n"] == 4 and "note" not in m


def test_metrics_hand_computed_with_ties():
    m = M.compute_metrics(Y_B, S_B, threshold=0.5)
    assert m["roc_auc"] == pytest.approx(7 / 9)
    assert m["average_precision"] == pytest.approx(34 / 45)
    assert m["eer"] == pytest.approx(1 / 3)
    assert m["eer_threshold"] == pytest.approx(0.5)
    assert m["best_f1_threshold"] == pytest.approx(0.2)
    assert m["best_f1"] == pytest.approx(0.75)
    # score >= 0.5 is fake: real 0.5 is a false positive, fake 0.2 a false negative.
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]


def test_eer_interpolates_along_a_tied_segment():
    # ROC: (0,0) -> (0,1/2) at 0.9 -> (1/2,1) at the 0.5 tie. On the tie segment
    # FNR = 1/2 - FPR, which meets FPR at 1/4.
    eer, _ = M.equal_error_rate([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1])
    assert eer == pytest.approx(0.25)


def test_single_class_gives_nan_and_a_note():
    m = M.compute_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert math.isnan(m["roc_auc"]) and math.isnan(m["eer"])
    assert "only one class" in m["note"]
    assert m["recall"] == pytest.approx(2 / 3)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="one score per label"):
        M.compute_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="only 0"):
        M.compute_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        M.compute_metrics([0, 1], [0.5, float("nan")])


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_sklearn_on_random_tied_scores(seed):
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 60)
    y[:2] = [0, 1]
    s = rng.integers(0, 8, 60) / 7.0  # many ties
    assert M.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s))
    assert M.average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s))
    fpr, tpr, _ = M.roc_curve(y, s)
    sk_fpr, sk_tpr, _ = sk.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    m = M.compute_metrics(y, s, threshold=0.5)
    pred = (s >= 0.5).astype(int)
    assert m["f1"] == pytest.approx(sk.f1_score(y, pred))
    assert m["precision"] == pytest.approx(sk.precision_score(y, pred))
    assert m["confusion_matrix"] == sk.confusion_matrix(y, pred).tolist()
    f1_at_best = sk.f1_score(y, (s >= m["best_f1_threshold"]).astype(int))
    assert f1_at_best == pytest.approx(m["best_f1"])
    assert all(sk.f1_score(y, (s >= t).astype(int)) <= m["best_f1"] + 1e-12 for t in np.unique(s))


# --- calibration -------------------------------------------------------------------------------


@pytest.mark.parametrize("true_t", [0.4, 1.0, 3.0])
def test_fit_temperature_recovers_a_known_temperature(true_t):
    rng = np.random.default_rng(1)
    calibrated = rng.normal(0.0, 2.0, 20000)
    labels = (rng.random(calibrated.size) < C.sigmoid(calibrated)).astype(int)
    fitted = C.fit_temperature(calibrated * true_t, labels)  # logits over-scaled by true_t
    assert fitted == pytest.approx(true_t, rel=0.05)
    before = C.expected_calibration_error(C.sigmoid(calibrated * true_t), labels)
    after = C.expected_calibration_error(C.sigmoid(calibrated * true_t / fitted), labels)
    assert after <= before + 1e-9 and after < 0.02


def test_ece_hand_computed():
    # 2 bins: [0, .5): p mean 0.2, fake rate 0.5 -> 0.3 * 2/4; [.5, 1]: 0.85 vs 1.0 -> 0.15 * 2/4.
    assert C.expected_calibration_error(
        [0.1, 0.3, 0.8, 0.9], [0, 1, 1, 1], n_bins=2
    ) == pytest.approx(0.225)
    assert C.expected_calibration_error([0.0, 1.0], [0, 1], n_bins=15) == pytest.approx(0.0)


def test_abstention_table_hand_computed():
    # confidences 0.95, 0.7, 0.55, 0.8; bound 0.6 drops the 0.55 sample; of the kept three,
    # 0.3 on a fake is wrong -> accuracy 2/3, coverage 3/4.
    rows = C.abstention_table([0.95, 0.3, 0.55, 0.2], [1, 1, 0, 0], bounds=[0.5, 0.6, 0.99])
    assert (rows[0].coverage, rows[0].accuracy) == (1.0, pytest.approx(0.5))
    assert (rows[1].coverage, rows[1].accuracy, rows[1].abstained) == (
        0.75,
        pytest.approx(2 / 3),
        1,
    )
    assert rows[2].kept == 0 and math.isnan(rows[2].accuracy)


def test_calibration_summary_keeps_ranking_and_reports_both_eces():
    rng = np.random.default_rng(2)
    z = rng.normal(0, 1, 500)
    y = (rng.random(500) < C.sigmoid(z)).astype(int)
    summary = C.calibration_summary(z * 4, y, C.fit_temperature(z * 4, y))
    assert summary["ece_after"] < summary["ece_before"]
    assert summary["nll_after"] < summary["nll_before"]
    assert [r["bound"] for r in summary["abstention"]] == list(C.DEFAULT_ABSTAIN_BOUNDS)


# --- plots -------------------------------------------------------------------------------------

_RNG = np.random.default_rng(0)
_Y = _RNG.integers(0, 2, 40)
_S = np.clip(_Y * 0.4 + _RNG.random(40) * 0.6, 0, 1)
_HISTORY = [
    {
        "epoch": e,
        "train_loss": 1 / e,
        "val_loss": 1.1 / e,
        "train_accuracy": 0.5 + e / 10,
        "val_accuracy": 0.5 + e / 12,
        "val_auc": 0.6 + e / 20,
    }
    for e in (1, 2, 3)
]
_SWEEP = [
    {
        "value": v,
        "val_auc": 0.6 + i / 10,
        "val_accuracy": 0.55 + i / 10,
        "train_accuracy": 0.8,
        "samples_per_s": 50.0 * (i + 1),
    }
    for i, v in enumerate((1, 2, 4))
]
_FACES = [_RNG.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(3)]

PLOT_INPUTS = {
    "data_distribution": lambda: P.plot_data_distribution(
        {
            "train": {"real": {"image": 4, "audio": 4}, "fake": {"image": 3, "audio": 2}},
            "test": {"real": {"image": 1}, "fake": {"image": 2}},
        }
    ),
    "audio_samples": lambda: P.plot_audio_samples(
        [_RNG.normal(size=4000)] * 2, [np.sin(np.arange(4000) / 5)]
    ),
    "image_samples": lambda: P.plot_image_samples(_FACES, _FACES[:2]),
    "loss_curves": lambda: P.plot_loss_curves(_HISTORY),
    "accuracy_curves": lambda: P.plot_accuracy_curves(_HISTORY),
    "emotion_consistency_heatmap": lambda: P.plot_emotion_consistency_heatmap(
        _RNG.integers(-1, 7, 40), _RNG.integers(0, 7, 40), _Y
    ),
    "confusion_matrix": lambda: P.plot_confusion_matrix(_Y, (_S >= 0.5).astype(int)),
    "roc_curve": lambda: P.plot_roc_curve(_Y, _S, {"image only": _RNG.random(40)}),
    "precision_recall_curve": lambda: P.plot_precision_recall_curve(
        _Y, _S, {"audio only": _RNG.random(40)}
    ),
    "f1_vs_threshold": lambda: P.plot_f1_vs_threshold(_Y, _S),
    "sensitivity_specificity": lambda: P.plot_sensitivity_specificity(_Y, _S),
    "prediction_distribution": lambda: P.plot_prediction_distribution(_Y, _S, threshold=0.4),
    "precision_recall_threshold": lambda: P.plot_precision_recall_threshold(_Y, _S),
    "feature_importance": lambda: P.plot_feature_importance(
        {"image": 0.1, "audio": 0.2, "consistency": -0.01}
    ),
    "memory_usage": lambda: P.plot_memory_usage(
        [{"step": i, "time": i * 0.5, "rss_bytes": 2**30 + i * 2**20} for i in range(20)],
        0.8 * 2**31,
        2**31,
    ),
    "learning_rate_sensitivity": lambda: P.plot_learning_rate_sensitivity(
        [dict(r, value=v) for r, v in zip(_SWEEP, (1e-4, 1e-3, 1e-2))]
    ),
    "batch_size_impact": lambda: P.plot_batch_size_impact(_SWEEP),
    "dropout_analysis": lambda: P.plot_dropout_analysis(
        [dict(r, value=v) for r, v in zip(_SWEEP, (0, 0.2, 0.5))]
    ),
    "fusion_comparison": lambda: P.plot_fusion_comparison(
        [
            {"name": "mid", "kind": "fusion", "val_auc": 0.9, "test_auc": 0.85},
            {"name": "late", "kind": "fusion", "val_auc": 0.8},
            {"name": "image only", "kind": "unimodal", "val_auc": 0.5, "test_auc": 0.49},
        ]
    ),
    "reliability_diagram": lambda: P.plot_reliability_diagram(
        _S, np.clip(_S * 0.8 + 0.1, 0, 1), _Y
    ),
}
WIDE = {
    "audio_samples",
    "image_samples",
    "emotion_consistency_heatmap",
    "batch_size_impact",
    "fusion_comparison",
}


def test_every_named_plot_has_a_function_and_inputs():
    assert set(PLOT_INPUTS) == set(P.PLOT_FILENAMES)
    numbers = sorted(int(f.split("_", 1)[0]) for f in P.PLOT_FILENAMES.values())
    assert numbers == list(range(1, 21))
    for name in P.PLOT_FILENAMES:
        assert callable(getattr(P, f"plot_{name}"))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PLOT_INPUTS))
def test_plot_renders_a_png_of_the_expected_size(name):
    fig = PLOT_INPUTS[name]()
    png = P.figure_to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    size = P.WIDE_FIGSIZE if name in WIDE else P.FIGSIZE
    image = Image.open(io.BytesIO(png))
    assert image.size == (round(size[0] * P.DPI), round(size[1] * P.DPI))
    # Every axes that draws data is labelled, and the figure has a title.
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.axison and ax.has_data()]
    assert axes
    labelled = [ax for ax in axes if ax.get_xlabel() and ax.get_ylabel()]
    # An image grid labels its first column only; every other plot labels every axes.
    assert labelled if name == "image_samples" else labelled == axes
    assert any(ax.get_title() for ax in fig.axes) or fig.get_suptitle()
    arr = np.asarray(image.convert("L"))
    assert arr.std() > 5  # not a blank canvas


def test_legend_appears_only_with_several_series():
    one = P.plot_loss_curves([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5}])
    two = P.plot_loss_curves(_HISTORY)
    assert one.axes[0].get_legend() is None
    assert two.axes[0].get_legend() is not None


def test_importing_plots_does_not_import_matplotlib():
    code = "import sys, mmdeepfake.reports.plots; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- report ------------------------------------------------------------------------------------


def test_report_has_tables_figures_and_offline_interactive_plots():
    page = build_report(
        "Evaluation <test>",
        summary={"split": "test"},
        tables={
            "Metrics": [
                {"metric": "roc_auc", "value": 0.9},
                {"metric": "eer", "value": float("nan")},
            ]
        },
        figures=["plots/08_roc_curve.png"],
        curves=(_Y, _S, {"image only": _RNG.random(40)}),
        notes=["only 40 samples"],
    )
    assert page.startswith("<!DOCTYPE html>")
    assert "Evaluation &lt;test&gt;" in page
    assert "<img src='plots/08_roc_curve.png'" in page
    assert "0.9000" in page and "—" in page
    assert "<script src" not in page and "<script type='text/javascript'>" in page  # offline
    assert page.count("Plotly.newPlot") == 3
    assert "only 40 samples" in page


def test_html_table_escapes_cells():
    assert "&lt;b&gt;" in html_table([{"name": "<b>", "value": 1}])
