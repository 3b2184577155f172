"""Temperature scaling, calibration error and abstention (numpy only).

A detector's raw fake logit is often over- or under-confident. Temperature scaling divides the
logit by one scalar ``T`` fitted on held-out data (Guo et al., 2017): it keeps the ranking (so
ROC-AUC and EER do not move) and only fixes how far the probabilities are from 0.5, which is
what abstention ("say *uncertain* below a confidence bound") depends on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

#: Temperatures are searched in [exp(-LOG_T_BOUND), exp(LOG_T_BOUND)]; on perfectly separated
#: data the likelihood keeps improving as T -> 0, and the bound stops it at a finite value.
LOG_T_BOUND = 4.0
DEFAULT_ABSTAIN_BOUNDS: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9)


def sigmoid(x: ArrayLike) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _binary_inputs(values: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if v.shape != y.shape:
        raise ValueError(f"got {v.size} values for {y.size} labels; pass one per label")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must hold only 0 (real) and 1 (fake)")
    if not np.isfinite(v).all():
        raise ValueError("values contain NaN or infinite numbers; check the model outputs")
    return v, y.astype(np.float64)


def binary_nll(logits: ArrayLike, labels: ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``sigmoid(logits / temperature)``."""
    z, y = _binary_inputs(logits, labels)
    z = z / temperature
    # log(1 + exp(-|z|)) + max(z, 0) - y z  ==  BCE with logits, stable for large |z|.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_temperature(logits: ArrayLike, labels: ArrayLike) -> float:
    """Temperature ``T`` minimising the NLL of ``sigmoid(logits / T)`` on ``labels``.

    The search runs over ``log T`` (so T stays positive and the scale is symmetric): a grid
    over [-LOG_T_BOUND, LOG_T_BOUND] finds the basin, then golden-section search refines it.
    Returns 1.0 when there is nothing to fit (no samples, or all logits zero).
    """
    z, y = _binary_inputs(logits, labels)
    if z.size == 0 or not np.any(z):
        return 1.0

    def nll(log_t: float) -> float:
        return binary_nll(z, y, math.exp(log_t))

    grid = np.linspace(-LOG_T_BOUND, LOG_T_BOUND, 81)
    values = [nll(g) for g in grid]
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo + (1 - ratio) * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = lo + (1 - ratio) * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(math.exp((lo + hi) / 2.0))


@dataclass(frozen=True)
class ReliabilityBin:
    """One bin of a reliability diagram over the predicted fake probability."""

    lower: float
    upper: float
    count: int
    mean_probability: float  # NaN when the bin is empty
    fraction_fake: float  # NaN when the bin is empty


def reliability_bins(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1] of the fake probability, with the observed fake rate.

    A sample with probability exactly 1 falls in the last bin.
    """
    p, y = _binary_inputs(probs, labels)
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.floor(p * n_bins).astype(np.int64), 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = idx == b
        count = int(mask.sum())
        bins.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=count,
                mean_probability=float(p[mask].mean()) if count else math.nan,
                fraction_fake=float(y[mask].mean()) if count else math.nan,
            )
        )
    return bins


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean of ``|fraction fake - mean probability|`` over the bins.

    For a binary detector this equals the top-label ECE of Guo et al. (confidence
    ``max(p, 1-p)`` against accuracy) up to where the bin edges fall, because
    ``|acc - conf|`` of a bin below 0.5 is ``|(1 - frac) - (1 - mean p)|``.
    """
    bins = reliability_bins(probs, labels, n_bins)
    total = sum(b.count for b in bins)
    if total == 0:
        return math.nan
    return float(
        sum(b.count * abs(b.fraction_fake - b.mean_probability) for b in bins if b.count) / total
    )


def confidence(probs: ArrayLike) -> np.ndarray:
    """Confidence of the real/fake call: ``max(p, 1 - p)``, the quantity abstention bounds."""
    p = np.asarray(probs, dtype=np.float64)
    return np.maximum(p, 1.0 - p)


@dataclass(frozen=True)
class AbstentionPoint:
    """What abstaining below one confidence bound keeps, and how accurate the kept calls are."""

    bound: float
    coverage: float  # fraction of samples that get a real/fake answer
    accuracy: float  # accuracy on those samples; NaN when none is kept
    kept: int
    abstained: int


def abstention_table(
    probs: ArrayLike,
    labels: ArrayLike,
    bounds: Sequence[float] = DEFAULT_ABSTAIN_BOUNDS,
    threshold: float = 0.5,
) -> list[AbstentionPoint]:
    """Coverage and accuracy when answering only where ``max(p, 1-p) >= bound``.

    Mirrors ``Detector.predict(..., abstain_below=bound)``, which returns ``"uncertain"`` for
    the samples dropped here; a bound of 0.5 or less keeps everything.
    """
    p, y = _binary_inputs(probs, labels)
    conf = confidence(p)
    correct = (p >= threshold).astype(np.float64) == y
    rows = []
    for bound in bounds:
        keep = conf >= bound
        kept = int(keep.sum())
        rows.append(
            AbstentionPoint(
                bound=float(bound),
                coverage=kept / p.size if p.size else math.nan,
                accuracy=float(correct[keep].mean()) if kept else math.nan,
                kept=kept,
                abstained=int(p.size - kept),
            )
        )
    return rows


def calibration_summary(
    logits: ArrayLike,
    labels: ArrayLike,
    temperature: float,
    bounds: Sequence[float] = DEFAULT_ABSTAIN_BOUNDS,
    n_bins: int = 15,
) -> dict[str, Any]:
    """ECE and NLL before and after ``temperature``, and the abstention table after it."""
    z, y = _binary_inputs(logits, labels)
    before, after = sigmoid(z), sigmoid(z / temperature)
    return {
        "temperature": float(temperature),
        "ece_before": expected_calibration_error(before, y, n_bins),
        "ece_after": expected_calibration_error(after, y, n_bins),
        "nll_before": binary_nll(z, y, 1.0) if z.size else math.nan,
        "nll_after": binary_nll(z, y, temperature) if z.size else math.nan,
        "abstention": [asdict(r) for r in abstention_table(after, y, bounds)],
    }
