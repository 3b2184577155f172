"""The report figures: one function per plot, each returning a matplotlib ``Figure``.

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas, never
through ``pyplot``: no global figure registry to leak memory in long training runs, no GUI
backend switched under a user's notebook, and safe from worker threads. matplotlib is imported
inside the functions, so ``import mmdeepfake`` does not need it.

Every figure has a title, axis labels, a legend when it shows more than one series, and a size
readable at 100% zoom (``FIGSIZE`` inches at ``DPI``, or ``WIDE_FIGSIZE`` for grids). Files are
named after ``PLOT_FILENAMES``: training writes 01-07, 15 and 20; evaluation 08-14 and 20; the
sweep 16-19.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from mmdeepfake import metrics as M
from mmdeepfake.calibration import expected_calibration_error, reliability_bins
from mmdeepfake.labels import EMOTIONS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
FIGSIZE = (8.0, 5.0)
WIDE_FIGSIZE = (11.0, 5.5)

PLOT_FILENAMES: dict[str, str] = {
    "data_distribution": "01_data_distribution.png",
    "audio_samples": "02_audio_samples.png",
    "image_samples": "03_image_samples.png",
    "loss_curves": "04_loss_curves.png",
    "accuracy_curves": "05_accuracy_curves.png",
    "emotion_consistency_heatmap": "06_emotion_consistency_heatmap.png",
    "confusion_matrix": "07_confusion_matrix.png",
    "roc_curve": "08_roc_curve.png",
    "precision_recall_curve": "09_precision_recall_curve.png",
    "f1_vs_threshold": "10_f1_vs_threshold.png",
    "sensitivity_specificity": "11_sensitivity_specificity.png",
    "prediction_distribution": "12_prediction_distribution.png",
    "precision_recall_threshold": "13_precision_recall_threshold.png",
    "feature_importance": "14_feature_importance.png",
    "memory_usage": "15_memory_usage.png",
    "learning_rate_sensitivity": "16_learning_rate_sensitivity.png",
    "batch_size_impact": "17_batch_size_impact.png",
    "dropout_analysis": "18_dropout_analysis.png",
    "fusion_comparison": "19_fusion_comparison.png",
    "reliability_diagram": "20_reliability_diagram.png",
}

# Metrics a sweep result may carry, in the order they are drawn, with their axis names.
_SWEEP_METRICS = (
    ("val_auc", "validation ROC-AUC"),
    ("val_accuracy", "validation accuracy"),
    ("train_accuracy", "training accuracy"),
)


# Line styles and markers of successive series, so coinciding curves stay visible.
LINE_STYLES = ("-", "--", "-.", ":")
MARKERS = ("", "s", "^", "D", "v")


def _figure(size: tuple[float, float] = FIGSIZE) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def figure_to_png(fig: Figure) -> bytes:
    """Render a figure to PNG bytes at its own size (``figsize * DPI`` pixels exactly)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)
    return buf.getvalue()


def _legend(ax: Axes) -> None:
    """Add a legend only when the axes shows more than one labelled series."""
    _, labels = ax.get_legend_handles_labels()
    if len([lb for lb in labels if not lb.startswith("_")]) > 1:
        ax.legend(loc="best", fontsize=9)


def _arrays(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(y_true).astype(np.int64).reshape(-1), np.asarray(scores, float).reshape(-1)


# --- 01-07: data and training ------------------------------------------------------------------


def plot_data_distribution(counts: Mapping[str, Mapping[str, Mapping[str, int]]]) -> Figure:
    """01: number of files per split, label and modality (``counts[split][label][modality]``)."""
    fig = _figure()
    ax = fig.add_subplot()
    splits = list(counts)
    series = sorted(
        {(lab, mod) for s in counts.values() for lab, mods in s.items() for mod in mods}
    )
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(splits))
    for i, (label, modality) in enumerate(series):
        values = [counts[s].get(label, {}).get(modality, 0) for s in splits]
        bars = ax.bar(
            x + (i - (len(series) - 1) / 2) * width, values, width, label=f"{label} {modality}"
        )
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(x, splits)
    ax.set_xlabel("split")
    ax.set_ylabel("number of files")
    ax.set_title("Dataset: files per split, label and modality")
    _legend(ax)
    return fig


def _spectrogram_db(wave: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Log-magnitude STFT (dB, frequency x time) with a Hann window, in numpy."""
    wave = np.asarray(wave, dtype=np.float64).reshape(-1)
    if wave.size < n_fft:
        wave = np.pad(wave, (0, n_fft - wave.size))
    frames = 1 + (wave.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(wave[idx] * np.hanning(n_fft), axis=1)).T
    return 20.0 * np.log10(np.maximum(spec, 1e-6))


def plot_audio_samples(
    real_waves: Sequence[np.ndarray], fake_waves: Sequence[np.ndarray], sample_rate: int = 16000
) -> Figure:
    """02: spectrograms of a few real (top row) and fake (bottom row) voice samples."""
    cols = max(min(max(len(real_waves), len(fake_waves)), 4), 1)
    fig = _figure(WIDE_FIGSIZE)
    axes = fig.subplots(2, cols, squeeze=False)
    image = None
    for row, (name, waves) in enumerate((("real", real_waves), ("fake", fake_waves))):
        for col in range(cols):
            ax = axes[row][col]
            if col >= len(waves):
                ax.set_axis_off()
                continue
            wave = np.asarray(waves[col])
            spec = _spectrogram_db(wave)
            duration = wave.size / sample_rate
            image = ax.imshow(
                spec,
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=spec.max() - 80,
                vmax=spec.max(),
                extent=(0.0, duration, 0.0, sample_rate / 2 / 1000),
            )
            ax.set_title(f"{name} #{col + 1}", fontsize=10)
            ax.set_xlabel("time (s)")
            ax.set_ylabel("frequency (kHz)")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label="magnitude (dB)", shrink=0.8)
    fig.suptitle("Voice samples: spectrograms, real (top) vs fake (bottom)")
    return fig


def plot_image_samples(
    real_images: Sequence[np.ndarray], fake_images: Sequence[np.ndarray]
) -> Figure:
    """03: a grid of face crops, real on the top row and fake on the bottom row."""
    cols = max(min(max(len(real_images), len(fake_images)), 6), 1)
    fig = _figure(WIDE_FIGSIZE)
    axes = fig.subplots(2, cols, squeeze=False)
    for row, (name, images) in enumerate((("real", real_images), ("fake", fake_images))):
        for col in range(cols):
            ax = axes[row][col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col < len(images):
                ax.imshow(np.asarray(images[col]))
                ax.set_title(f"{name} #{col + 1}", fontsize=10)
            else:
                ax.set_frame_on(False)
            if col == 0:
                ax.set_ylabel(name, fontsize=12)
        axes[row][0].set_xlabel("face crop")
    fig.suptitle("Face samples: real (top) vs fake (bottom)")
    return fig


def _history_series(history: Sequence[Mapping[str, Any]], key: str) -> tuple[list, list]:
    xs, ys = [], []
    for i, row in enumerate(history):
        value = row.get(key)
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            xs.append(row.get("epoch", i + 1))
            ys.append(value)
    return xs, ys


def _plot_history(
    history: Sequence[Mapping[str, Any]], keys: Sequence[tuple[str, str]], title: str, ylabel: str
) -> Figure:
    fig = _figure()
    ax = fig.add_subplot()
    for key, label in keys:
        xs, ys = _history_series(history, key)
        if xs:
            ax.plot(xs, ys, marker="o", label=label)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


def plot_loss_curves(history: Sequence[Mapping[str, Any]]) -> Figure:
    """04: training and validation loss per epoch."""
    return _plot_history(
        history,
        (("train_loss", "training loss"), ("val_loss", "validation loss")),
        "Loss per epoch",
        "loss",
    )


def plot_accuracy_curves(history: Sequence[Mapping[str, Any]]) -> Figure:
    """05: training and validation accuracy (and validation ROC-AUC) per epoch."""
    return _plot_history(
        history,
        (
            ("train_accuracy", "training accuracy"),
            ("val_accuracy", "validation accuracy"),
            ("val_auc", "validation ROC-AUC"),
        ),
        "Accuracy per epoch",
        "accuracy / AUC",
    )


def plot_emotion_consistency_heatmap(
    face_emotions: ArrayLike, voice_emotions: ArrayLike, labels: ArrayLike
) -> Figure:
    """06: the model's predicted face emotion vs predicted voice emotion, real and fake panels.

    The emotions are the model's own predictions (not ground-truth labels), and the figure says
    so. Real media should sit on the diagonal (face and voice agree); fakes spread off it.
    Samples with an unknown emotion (-1) are left out.
    """
    face = np.asarray(face_emotions, dtype=np.int64).reshape(-1)
    voice = np.asarray(voice_emotions, dtype=np.int64).reshape(-1)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    k = len(EMOTIONS)
    fig = _figure(WIDE_FIGSIZE)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    grids, totals = [], []
    for value in (0, 1):
        mask = (y == value) & (face >= 0) & (voice >= 0) & (face < k) & (voice < k)
        grid = np.zeros((k, k), dtype=np.int64)
        np.add.at(grid, (face[mask], voice[mask]), 1)
        grids.append(grid)
        totals.append(int(mask.sum()))
    vmax = max(1, max(int(g.max()) for g in grids))  # one colour scale for both panels
    for ax, grid, total, name in zip(axes, grids, totals, ("real", "fake")):
        image = ax.imshow(grid, cmap="Blues", vmin=0, vmax=vmax)
        for i in range(k):
            for j in range(k):
                if grid[i, j]:
                    ax.text(
                        j,
                        i,
                        str(grid[i, j]),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if grid[i, j] > vmax / 2 else "black",
                    )
        ax.set_xticks(range(k), EMOTIONS, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), EMOTIONS, fontsize=8)
        ax.set_xlabel("voice emotion (predicted)")
        ax.set_ylabel("face emotion (predicted)")
        ax.set_title(f"{name} (n={total})")
    from matplotlib.ticker import MaxNLocator

    bar = fig.colorbar(image, ax=list(axes), label="samples", shrink=0.8)
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    fig.suptitle("Emotion consistency: face vs voice emotion, as predicted by the model")
    return fig


def plot_confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike) -> Figure:
    """07: the 2x2 confusion matrix with counts and row percentages."""
    cm = M.confusion_matrix(y_true, y_pred)
    fig = _figure()
    ax = fig.add_subplot()
    image = ax.imshow(cm, cmap="Blues")
    rows = cm.sum(axis=1, keepdims=True)
    for i in range(2):
        for j in range(2):
            share = cm[i, j] / rows[i, 0] if rows[i, 0] else 0.0
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n({share:.1%})",
                ha="center",
                va="center",
                fontsize=12,
                color="white" if cm[i, j] > cm.max() / 2 else "black",
            )
    ax.set_xticks([0, 1], ["real", "fake"])
    ax.set_yticks([0, 1], ["real", "fake"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Confusion matrix (n={int(cm.sum())})")
    fig.colorbar(image, ax=ax, label="samples")
    return fig


# --- 08-14: evaluation -------------------------------------------------------------------------


def plot_roc_curve(
    y_true: ArrayLike, scores: ArrayLike, extra: Mapping[str, ArrayLike] | None = None
) -> Figure:
    """08: ROC curve with its AUC and EER point; ``extra`` adds curves (e.g. one modality).

    Every series has its own line style and marker, and a curve identical to an earlier one
    says so in the legend, so no series hides under another.
    """
    fig = _figure()
    ax = fig.add_subplot()
    drawn: list[tuple[str, np.ndarray, np.ndarray]] = []
    for i, (name, s) in enumerate({"detector": scores, **(extra or {})}.items()):
        fpr, tpr, _ = M.roc_curve(y_true, s)
        auc = M.roc_auc(y_true, s)
        same = [
            n
            for n, f, t in drawn
            if f.shape == fpr.shape and np.allclose(f, fpr) and np.allclose(t, tpr)
        ]
        note = f", same curve as {same[0]}" if same else ""
        ax.plot(
            fpr,
            tpr,
            lw=2.2 if i == 0 else 1.6,
            ls=LINE_STYLES[i % len(LINE_STYLES)],
            marker=MARKERS[i % len(MARKERS)],
            markevery=0.1,
            markersize=5,
            label=f"{name} (AUC={auc:.3f}{note})",
        )
        drawn.append((name, fpr, tpr))
        if i == 0:
            eer, _ = M.equal_error_rate(y_true, s)
            if not math.isnan(eer):
                ax.plot([eer], [1 - eer], "o", color="black", label=f"EER={eer:.3f}")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="chance")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false positive rate (real called fake)")
    ax.set_ylabel("true positive rate (fake caught)")
    ax.set_title("ROC curve")
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


def plot_precision_recall_curve(
    y_true: ArrayLike, scores: ArrayLike, extra: Mapping[str, ArrayLike] | None = None
) -> Figure:
    """09: precision-recall curve with average precision; the no-skill line is the fake rate."""
    y, _ = _arrays(y_true, scores)
    fig = _figure()
    ax = fig.add_subplot()
    for i, (name, s) in enumerate({"detector": scores, **(extra or {})}.items()):
        precision, recall, _ = M.precision_recall_curve(y, s)
        ap = M.average_precision(y, s)
        ax.step(
            np.r_[0.0, recall],
            np.r_[precision[:1], precision],
            where="pre",
            lw=2.2 if i == 0 else 1.4,
            label=f"{name} (AP={ap:.3f})",
        )
    if y.size:
        ax.axhline(y.mean(), ls="--", color="grey", lw=1, label=f"no skill ({y.mean():.2f})")
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.05)
    ax.set_xlabel("recall (fakes caught)")
    ax.set_ylabel("precision (calls of fake that are right)")
    ax.set_title("Precision-recall curve")
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


def _threshold_grid(scores: np.ndarray) -> np.ndarray:
    """Thresholds to sweep: a fine grid over [0, 1] plus every distinct score."""
    return np.unique(np.r_[np.linspace(0, 1, 201), scores])


def _rates_at(y: np.ndarray, s: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Recall, specificity, precision and F1 at each threshold (``score >= t`` is fake)."""
    pos, neg = np.sort(s[y == 1]), np.sort(s[y == 0])
    tp = (pos.size - np.searchsorted(pos, thresholds, side="left")).astype(float)
    fp = (neg.size - np.searchsorted(neg, thresholds, side="left")).astype(float)
    n_pos, n_neg = float(pos.size), float(neg.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = tp / n_pos if n_pos else np.full_like(tp, np.nan)
        specificity = (n_neg - fp) / n_neg if n_neg else np.full_like(fp, np.nan)
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.nan)
        f1_den = tp + fp + n_pos  # 2TP + FP + FN
        f1 = np.where(f1_den > 0, 2 * tp / np.maximum(f1_den, 1), 0.0)
    return {"recall": recall, "specificity": specificity, "precision": precision, "f1": f1}


def plot_f1_vs_threshold(y_true: ArrayLike, scores: ArrayLike) -> Figure:
    """10: F1 as the decision threshold moves, with the F1-maximising threshold marked."""
    y, s = _arrays(y_true, scores)
    t = _threshold_grid(s)
    rates = _rates_at(y, s, t)
    best_t, best_f1 = M.best_f1_threshold(y, s)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(t, rates["f1"], lw=2, label="F1")
    if not math.isnan(best_t):
        ax.axvline(
            best_t,
            ls="--",
            color="tab:red",
            label=f"best threshold {best_t:.3f} (F1={best_f1:.3f})",
        )
    ax.axvline(0.5, ls=":", color="grey", label="default threshold 0.5")
    ax.set_xlabel("threshold on fake probability")
    ax.set_ylabel("F1 score")
    ax.set_ylim(-0.01, 1.01)
    ax.set_title("F1 vs decision threshold")
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


def plot_sensitivity_specificity(y_true: ArrayLike, scores: ArrayLike) -> Figure:
    """11: sensitivity (fakes caught) and specificity (reals passed) vs threshold, EER marked."""
    y, s = _arrays(y_true, scores)
    t = _threshold_grid(s)
    rates = _rates_at(y, s, t)
    eer, eer_t = M.equal_error_rate(y, s)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(t, rates["recall"], lw=2, label="sensitivity (true positive rate)")
    ax.plot(t, rates["specificity"], lw=2, label="specificity (true negative rate)")
    if not math.isnan(eer):
        ax.axvline(
            eer_t, ls="--", color="black", lw=1, label=f"EER threshold {eer_t:.3f} (EER={eer:.3f})"
        )
    ax.set_xlabel("threshold on fake probability")
    ax.set_ylabel("rate")
    ax.set_ylim(-0.01, 1.01)
    ax.set_title("Sensitivity and specificity vs threshold")
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


def plot_prediction_distribution(
    y_true: ArrayLike, scores: ArrayLike, threshold: float = 0.5
) -> Figure:
    """12: histograms of the fake probability for real and for fake samples."""
    y, s = _arrays(y_true, scores)
    fig = _figure()
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 31).tolist()
    for value, name, color in ((0, "real", "tab:blue"), (1, "fake", "tab:red")):
        ax.hist(
            s[y == value],
            bins=bins,
            alpha=0.55,
            color=color,
            label=f"{name} (n={int((y == value).sum())})",
        )
    ax.axvline(threshold, ls="--", color="black", label=f"threshold {threshold:g}")
    ax.set_xlabel("predicted fake probability")
    ax.set_ylabel("samples")
    ax.set_title("Distribution of predictions by true label")
    _legend(ax)
    return fig


def plot_precision_recall_threshold(y_true: ArrayLike, scores: ArrayLike) -> Figure:
    """13: precision and recall as functions of the threshold."""
    y, s = _arrays(y_true, scores)
    t = _threshold_grid(s)
    rates = _rates_at(y, s, t)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(t, rates["precision"], lw=2, label="precision")
    ax.plot(t, rates["recall"], lw=2, label="recall")
    ax.set_xlabel("threshold on fake probability")
    ax.set_ylabel("precision / recall")
    ax.set_ylim(-0.01, 1.05)
    ax.set_title("Precision and recall vs threshold")
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


def plot_feature_importance(importances: Mapping[str, float]) -> Figure:
    """14: drop in ROC-AUC when each input (modality or consistency feature) is removed.

    Undefined (NaN) importances, e.g. from a single-class split, are left out.
    """
    items = sorted(
        ((k, float(v)) for k, v in importances.items() if np.isfinite(v)), key=lambda kv: kv[1]
    )
    fig = _figure()
    ax = fig.add_subplot()
    names = [k for k, _ in items]
    values = [v for _, v in items]
    colors = ["tab:red" if v >= 0 else "tab:grey" for v in values]
    bars = ax.barh(names, values, color=colors)
    ax.bar_label(bars, fmt="%.3f", fontsize=9, padding=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("drop in ROC-AUC when removed (higher = more important)")
    ax.set_ylabel("input")
    ax.set_title("Feature importance: which modality and consistency cues matter")
    low, high = min([0.0, *values]), max([0.0, *values])
    pad = 0.2 * (high - low) or 0.05  # room for the value labels on either side of zero
    ax.set_xlim(low - pad, high + pad)
    return fig


# --- 15: memory ----------------------------------------------------------------------------


def plot_memory_usage(
    samples: Sequence[Mapping[str, float]], cap_bytes: float, budget_bytes: float
) -> Figure:
    """15: resident memory per training step against the budget and the 80% cap."""
    gib = float(1 << 30)
    fig = _figure()
    ax = fig.add_subplot()
    steps = [s.get("step", i) for i, s in enumerate(samples)]
    ax.plot(steps, [s["rss_bytes"] / gib for s in samples], lw=1.6, label="resident memory (RSS)")
    ax.axhline(cap_bytes / gib, ls="--", color="tab:red", label=f"cap {cap_bytes / gib:.2f} GiB")
    ax.axhline(
        budget_bytes / gib, ls=":", color="black", label=f"budget {budget_bytes / gib:.2f} GiB"
    )
    ax.set_xlabel("training step")
    ax.set_ylabel("memory (GiB)")
    ax.set_ylim(bottom=0)
    ax.set_title("Memory usage during training")
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig


# --- 16-19: sweeps -------------------------------------------------------------------------


def _plot_sweep(
    results: Sequence[Mapping[str, Any]],
    title: str,
    xlabel: str,
    log_x: bool = False,
    throughput: bool = False,
) -> Figure:
    rows = sorted(results, key=lambda r: float(r["value"]))
    xs = [float(r["value"]) for r in rows]
    fig = _figure(WIDE_FIGSIZE if throughput else FIGSIZE)
    axes = fig.subplots(1, 2 if throughput else 1, squeeze=False)[0]
    ax = axes[0]
    for key, label in _SWEEP_METRICS:
        points = [(x, r[key]) for x, r in zip(xs, rows) if r.get(key) is not None]
        if points:
            ax.plot(*zip(*points), marker="o", lw=2, label=label)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("score")
    ax.set_ylim(-0.01, 1.05)
    ax.set_title("Validation metrics" if throughput else title)
    ax.grid(alpha=0.3)
    _legend(ax)
    if throughput:
        tax = axes[1]
        points = [
            (x, r["samples_per_s"]) for x, r in zip(xs, rows) if r.get("samples_per_s") is not None
        ]
        if points:
            tax.plot(
                *zip(*points), marker="s", lw=2, color="tab:purple", label="training throughput"
            )
        tax.set_xlabel(xlabel)
        tax.set_ylabel("samples per second")
        tax.set_title("Training throughput")
        tax.grid(alpha=0.3)
        fig.suptitle(title)
    return fig


def plot_learning_rate_sensitivity(results: Sequence[Mapping[str, Any]]) -> Figure:
    """16: validation metrics per learning rate (``results``: dicts with ``value`` and metrics)."""
    return _plot_sweep(
        results, "Learning-rate sensitivity", "learning rate (log scale)", log_x=True
    )


def plot_batch_size_impact(results: Sequence[Mapping[str, Any]]) -> Figure:
    """17: validation metrics and training throughput per batch size."""
    return _plot_sweep(results, "Batch-size impact", "batch size", log_x=True, throughput=True)


def plot_dropout_analysis(results: Sequence[Mapping[str, Any]]) -> Figure:
    """18: training vs validation accuracy per dropout rate (the gap shows over-fitting)."""
    return _plot_sweep(results, "Dropout analysis", "dropout probability")


def plot_fusion_comparison(results: Sequence[Mapping[str, Any]]) -> Figure:
    """19: ROC-AUC of every fusion strategy next to the single-modality baselines.

    ``results``: dicts with ``name``, ``kind`` (``"fusion"`` or ``"unimodal"``) and any of
    ``val_auc`` / ``test_auc``, drawn in the given order (a run's unimodal heads follow its
    fusion), one bar group per row, so the figure holds exactly the rows of its table.
    Unimodal bars are hatched so the comparison is visible at once.
    """
    rows = list(results)
    keys = [k for k in ("val_auc", "test_auc") if any(r.get(k) is not None for r in rows)]
    fig = _figure(WIDE_FIGSIZE)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    width = 0.8 / max(len(keys), 1)
    for i, key in enumerate(keys):
        values = [float(r[key]) if r.get(key) is not None else np.nan for r in rows]
        offsets = x + (i - (len(keys) - 1) / 2) * width
        bars = ax.bar(
            offsets,
            values,
            width,
            label=key.replace("val_auc", "validation ROC-AUC").replace("test_auc", "test ROC-AUC"),
        )
        for bar, row in zip(bars, rows):
            if row.get("kind") != "fusion":
                bar.set_hatch("//")
                bar.set_edgecolor("black")
        ax.bar_label(bars, fmt="%.2f" if len(rows) > 8 else "%.3f", fontsize=7, padding=2)
    ax.axhline(0.5, ls="--", color="grey", lw=1, label="chance (0.5)")
    ax.set_xticks(
        x,
        [
            f"{r['name']}\n({'fusion' if r.get('kind') == 'fusion' else 'single modality'})"
            for r in rows
        ],
        fontsize=9 if len(rows) <= 8 else 7,
        rotation=0 if len(rows) <= 8 else 30,
        ha="center" if len(rows) <= 8 else "right",
    )
    ax.set_xlabel("model")
    ax.set_ylabel("ROC-AUC")
    ax.set_ylim(0, 1.1)
    ax.set_title("Fusion strategies vs single-modality baselines")
    _legend(ax)
    return fig


# --- 20: calibration ---------------------------------------------------------------------------


def plot_reliability_diagram(
    probs_before: ArrayLike,
    probs_after: ArrayLike,
    labels: ArrayLike,
    n_bins: int = 15,
    min_count: int = 5,
) -> Figure:
    """20: observed fake rate vs predicted probability, before and after temperature scaling.

    Each point is labelled with its bin's sample count; bins with fewer than
    ``min_count`` samples are drawn hollow and left off the line, because a fraction of
    fakes over two or three samples says little.
    """
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1, label="perfect calibration")
    for probs, name, marker in ((probs_before, "before", "o"), (probs_after, "after", "s")):
        bins = [b for b in reliability_bins(probs, labels, n_bins) if b.count]
        ece = expected_calibration_error(probs, labels, n_bins)
        solid = [b for b in bins if b.count >= min_count]
        (line,) = ax.plot(
            [b.mean_probability for b in solid],
            [b.fraction_fake for b in solid],
            marker=marker,
            lw=1.8,
            label=f"{name} temperature scaling (ECE={ece:.3f})",
        )
        few = [b for b in bins if b.count < min_count]
        if few:
            ax.plot(
                [b.mean_probability for b in few],
                [b.fraction_fake for b in few],
                ls="none",
                marker=marker,
                markerfacecolor="none",
                color=line.get_color(),
                label=f"{name}: bins with < {min_count} samples",
            )
        for b in bins:
            ax.annotate(
                f"n={b.count}",
                (b.mean_probability, b.fraction_fake),
                textcoords="offset points",
                xytext=(4, 4 if marker == "o" else -10),
                fontsize=7,
                color=line.get_color(),
            )
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("mean predicted fake probability (per bin)")
    ax.set_ylabel("observed fraction of fakes")
    ax.set_title("Reliability diagram")
    ax.grid(alpha=0.3)
    _legend(ax)
    return fig
