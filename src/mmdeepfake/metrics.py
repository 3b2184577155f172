"""Binary detection metrics in plain numpy.

Conventions used everywhere in mmdeepfake's evaluation:

- label 1 is *fake* (the positive class), 0 is *real*;
- a score is the probability (or any monotone score) that a sample is fake;
- a sample is called fake when ``score >= threshold``.

Curves are built at the distinct score values, so tied scores move together: a tie between a
real and a fake sample counts half in the ROC-AUC (the Mann-Whitney convention) and adds one
step, not two, to the precision-recall curve. numpy only, so the library does not need
scikit-learn at run time; the tests cross-check every number against scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class ThresholdCounts:
    """Confusion counts at each distinct score, from the highest threshold to the lowest.

    ``thresholds[i]`` is a score present in the data; ``tp[i]``, ``fp[i]`` count the samples
    with ``score >= thresholds[i]`` that are fake and real respectively.
    """

    thresholds: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    n_pos: int
    n_neg: int


def _as_arrays(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate and flatten labels and scores, so every metric sees the same inputs."""
    y = np.asarray(y_true).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(
            f"y_true has {y.size} values but scores has {s.size}; pass one score per label"
        )
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError("y_true must hold only 0 (real) and 1 (fake)")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values; check the model outputs")
    return y.astype(np.int64), s


def threshold_counts(y_true: ArrayLike, scores: ArrayLike) -> ThresholdCounts:
    """Cumulative true/false positives at every distinct score (ties grouped)."""
    y, s = _as_arrays(y_true, scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # Last index of each run of equal scores: counts are read after the whole tie is included.
    last_of_run = (
        np.r_[np.nonzero(np.diff(s_sorted))[0], s_sorted.size - 1] if s.size else np.array([], int)
    )
    tp = np.cumsum(y_sorted)[last_of_run]
    fp = (last_of_run + 1) - tp
    return ThresholdCounts(
        thresholds=s_sorted[last_of_run],
        tp=tp.astype(np.int64),
        fp=fp.astype(np.int64),
        n_pos=int(y.sum()),
        n_neg=int(y.size - y.sum()),
    )


def roc_curve(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds, starting at (0, 0) with ``inf``.

    Rates are NaN when a class is absent (the curve is undefined then).
    """
    c = threshold_counts(y_true, scores)
    tp = np.r_[0, c.tp].astype(np.float64)
    fp = np.r_[0, c.fp].astype(np.float64)
    tpr = tp / c.n_pos if c.n_pos else np.full_like(tp, np.nan)
    fpr = fp / c.n_neg if c.n_neg else np.full_like(fp, np.nan)
    return fpr, tpr, np.r_[np.inf, c.thresholds]


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (trapezoids: ties between classes count one half)."""
    fpr, tpr, _ = roc_curve(y_true, scores)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return math.nan
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def precision_recall_curve(
    y_true: ArrayLike, scores: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds at each distinct score, highest threshold first."""
    c = threshold_counts(y_true, scores)
    predicted = (c.tp + c.fp).astype(np.float64)
    precision = c.tp / predicted
    recall = c.tp / c.n_pos if c.n_pos else np.full(c.tp.shape, np.nan)
    return precision, recall, c.thresholds


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Step-wise area under the PR curve: sum of (R_k - R_{k-1}) * P_k (no interpolation)."""
    precision, recall, _ = precision_recall_curve(y_true, scores)
    if recall.size == 0 or np.isnan(recall).any():
        return math.nan
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def f1_curve(y_true: ArrayLike, scores: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """F1 at each distinct score used as threshold, highest threshold first."""
    c = threshold_counts(y_true, scores)
    # Every threshold is a score from the data, so at least one sample is called fake there
    # (TP + FP >= 1) and the denominator 2TP + FN + FP is never zero.
    denom = 2 * c.tp + (c.n_pos - c.tp) + c.fp
    return (2 * c.tp / denom).astype(np.float64), c.thresholds


def best_f1_threshold(y_true: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """(threshold, F1) maximising F1; among equal F1 the highest threshold wins."""
    f1, thresholds = f1_curve(y_true, scores)
    if f1.size == 0:
        return math.nan, math.nan
    i = int(np.argmax(f1))  # argmax returns the first, i.e. highest, threshold on ties
    return float(thresholds[i]), float(f1[i])


def equal_error_rate(y_true: ArrayLike, scores: ArrayLike) -> tuple[float, float]:
    """(EER, threshold) where the false-positive and false-negative rates meet.

    The EER is read where the two rates cross, interpolating linearly between the two ROC
    points around the crossing. The threshold returned is a score from the data: the one whose
    operating point has the smallest ``|FNR - FPR|`` (the higher score on a tie).
    """
    fpr, tpr, _ = roc_curve(y_true, scores)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return math.nan, math.nan
    diff = (1.0 - tpr) - fpr  # decreasing from +1 (threshold inf) to -1 (lowest score)
    k = int(np.nonzero(diff <= 0)[0][0])
    if diff[k] == 0:
        eer = float(fpr[k])
    else:
        t = diff[k - 1] / (diff[k - 1] - diff[k])
        eer = float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))
    # |FNR - FPR| scaled by n_pos * n_neg is an integer: an exact tie stays a tie (rounded
    # rates can make 1/2 - 1/3 look larger than 2/3 - 1/2), so the higher score wins it.
    c = threshold_counts(y_true, scores)
    gap = np.abs((c.n_pos - c.tp) * c.n_neg - c.fp * c.n_pos)
    return eer, float(c.thresholds[int(np.argmin(gap))])


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """2x2 counts ``[[TN, FP], [FN, TP]]``: rows are the true class (real, fake)."""
    y, p = _as_arrays(y_true, np.asarray(y_pred, dtype=np.float64))
    if p.size and not np.isin(p, (0, 1)).all():
        raise ValueError("y_pred must hold only 0 (real) and 1 (fake)")
    p = p.astype(np.int64)
    return np.array(
        [
            [np.sum((y == 0) & (p == 0)), np.sum((y == 0) & (p == 1))],
            [np.sum((y == 1) & (p == 0)), np.sum((y == 1) & (p == 1))],
        ],
        dtype=np.int64,
    )


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else math.nan


def compute_metrics(y_true: ArrayLike, scores: ArrayLike, threshold: float = 0.5) -> dict[str, Any]:
    """Every headline number of a real/fake evaluation, as a JSON-friendly dict.

    Keys: ``n``, ``n_real``, ``n_fake``, ``threshold``, ``accuracy``, ``precision``,
    ``recall``, ``specificity``, ``f1``, ``roc_auc``, ``average_precision``, ``eer``,
    ``eer_threshold``, ``best_f1_threshold``, ``best_f1``, ``confusion_matrix`` (nested lists
    ``[[TN, FP], [FN, TP]]``). Values that are undefined for the data (ROC-AUC with one class,
    precision with no predicted fakes, ...) are NaN, and ``note`` says why.
    """
    y, s = _as_arrays(y_true, scores)
    pred = (s >= threshold).astype(np.int64)
    (tn, fp), (fn, tp) = confusion_matrix(y, pred).tolist()
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    eer, eer_thr = equal_error_rate(y, s)
    best_thr, best_f1 = best_f1_threshold(y, s)
    out: dict[str, Any] = {
        "n": int(y.size),
        "n_real": int(tn + fp),
        "n_fake": int(fn + tp),
        "threshold": float(threshold),
        "accuracy": _ratio(tp + tn, y.size),
        "precision": precision,
        "recall": recall,
        "specificity": _ratio(tn, tn + fp),
        "f1": f1,
        "roc_auc": roc_auc(y, s),
        "average_precision": average_precision(y, s),
        "eer": eer,
        "eer_threshold": eer_thr,
        "best_f1_threshold": best_thr,
        "best_f1": best_f1,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }
    notes = []
    if y.size == 0:
        notes.append("no samples were scored")
    elif tp + fn == 0 or tn + fp == 0:
        missing = "fake" if tp + fn == 0 else "real"
        notes.append(
            f"only one class is present (no {missing} samples): ROC-AUC, AP and EER are undefined; "
            "evaluate on a split with both real and fake samples"
        )
    if y.size and tp + fp == 0:
        notes.append(f"no sample scored >= {threshold:g}, so precision is undefined")
    if notes:
        out["note"] = "; ".join(notes)
    return out
