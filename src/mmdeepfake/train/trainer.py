"""The training run behind ``mmdeepfake-train``: one fusion strategy, one run id.

One call of :func:`train` runs a whole experiment in three parts, each in its own module:

- :mod:`~mmdeepfake.train.run_context`: the data source is checked at start-up (so a missing
  bucket or an empty split fails in seconds, not after an epoch) and the outputs folder and
  run id are chosen (a new run, or the one being resumed);
- :mod:`~mmdeepfake.train.fit`: pairs are streamed from storage and trained on, with
  DistributedDataParallel when launched by torchrun and the batch size the memory guard allows;
  every epoch is validated and checkpointed (and so is a stop on SIGINT/SIGTERM), and the best
  model by validation ROC-AUC is kept;
- :mod:`~mmdeepfake.train.finalise`: the best model is calibrated with a temperature fitted on
  the validation split and given its unfamiliar-input guard, the plots and summary are written,
  and the model is optionally pushed to the Hugging Face Hub.

Training every fusion strategy and comparing them (``--fusion all``) is a sweep:
:func:`mmdeepfake.sweep.train_every_fusion`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmdeepfake.errors import ConfigError
from mmdeepfake.train import distributed as D
from mmdeepfake.train.config import TrainConfig
from mmdeepfake.train.finalise import distinct_clip_samples, finalise
from mmdeepfake.train.fit import PREDICTION_COLUMNS, FitLoop, StopFlag, TrainingInterrupted
from mmdeepfake.train.run_context import METRIC_COLUMNS, LogCapture, RunContext

__all__ = [
    "METRIC_COLUMNS",
    "PREDICTION_COLUMNS",
    "TrainResult",
    "TrainingInterrupted",
    "distinct_clip_samples",
    "run_training",
    "train",
]


@dataclass
class TrainResult:
    """What a run produced. ``history`` has one row per epoch (see METRIC_COLUMNS)."""

    run_id: str
    output_uri: str
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metrics: dict[str, Any] = field(default_factory=dict)
    best_model_uri: str | None = None
    skipped_samples: int = 0
    peak_rss_bytes: int = 0
    calibration: dict[str, Any] = field(default_factory=dict)
    comparison: list[dict[str, Any]] | None = None


def train(config: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Run the experiment described by ``config``; see the module docstring."""
    if config.fusion == "all":
        raise ConfigError(
            "fusion 'all' trains one run per strategy: use mmdeepfake.sweep.train_every_fusion "
            "(what mmdeepfake-train --fusion all runs)"
        )
    config.check_source()
    dist = D.init_distributed(config.device)
    try:
        return run_training(config, dist, progress)
    finally:
        D.shutdown()


def run_training(config: TrainConfig, dist: D.DistInfo, progress: bool = True) -> TrainResult:
    """One run in an already set-up process group (``dist``): open, fit, finalise."""
    with LogCapture() as capture, StopFlag() as stop:
        ctx = RunContext.open(config, dist)
        fit = FitLoop(ctx, progress)
        fit.run(capture, stop)
        calibration = finalise(ctx, fit)
        fit.write_logs(capture)
    return TrainResult(
        run_id=ctx.out.run_id,
        output_uri=ctx.out.uri(),
        history=fit.history,
        best_metrics=fit.best,
        best_model_uri=ctx.out.uri("models", "best"),
        skipped_samples=fit.skipped_total,
        peak_rss_bytes=fit.guard.peak_bytes,
        calibration=calibration,
    )
