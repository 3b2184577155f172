"""Hyper-parameter sweeps: one short training per value, compared on validation (and test).

The sweep sits above training and evaluation: it trains (:mod:`mmdeepfake.train`), then
scores each best model (:mod:`mmdeepfake.evaluate`), and neither of those imports it.

Each value is a full :func:`mmdeepfake.train.trainer.train` run with its own run id
(``<sweep_id>-<param>-<value>``), so every run keeps its own models, logs and plots. The sweep
then records the best validation metrics of each run, optionally scores each best model on a
held-out split, and writes ``results.json``, ``results.csv``, its plot (16-19) and an
``index.html`` under ``<outputs>/sweeps/<sweep_id>/``.

Single-modality baselines: every fusion strategy carries a face-only head and a voice-only
head trained on the real/fake label (see :mod:`mmdeepfake.fusion.base`). A fusion sweep reports
each run's own heads beside its fused result, in the figure and in its table alike, so the
fused-vs-unimodal comparison is always on the page and every number in it has one source.

``mmdeepfake-train --fusion all`` runs the same runs as a fusion sweep, without the test split,
and writes its comparison under the base run id instead: :func:`train_every_fusion`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmdeepfake.sweep.params import PLOT_FOR_PARAM, SWEEP_PARAMS, parse_values

# The runs import training, evaluation and torch: loaded on first use, so the command line
# builds its parser (which reads SWEEP_PARAMS) without them.
_RUNS = (
    "RESULT_COLUMNS",
    "SweepResult",
    "fusion_comparison_rows",
    "fusion_table",
    "run_sweep",
    "train_every_fusion",
)

__all__ = [
    "PLOT_FOR_PARAM",
    "RESULT_COLUMNS",
    "SWEEP_PARAMS",
    "SweepResult",
    "fusion_comparison_rows",
    "fusion_table",
    "parse_values",
    "run_sweep",
    "train_every_fusion",
]

if TYPE_CHECKING:
    from mmdeepfake.sweep.runs import (
        RESULT_COLUMNS,
        SweepResult,
        fusion_comparison_rows,
        fusion_table,
        run_sweep,
        train_every_fusion,
    )


def __getattr__(name: str) -> Any:
    if name not in _RUNS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("mmdeepfake.sweep.runs"), name)
    globals()[name] = value
    return value
