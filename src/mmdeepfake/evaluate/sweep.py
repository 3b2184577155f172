"""Hyper-parameter sweeps: one short training per value, compared on validation (and test).

Each value is a full :func:`mmdeepfake.train.trainer.train` run with its own run id
(``<sweep_id>-<param>-<value>``), so every run keeps its own models, logs and plots. The sweep
then records the best validation metrics of each run, optionally scores each best model on a
held-out split, and writes ``results.json``, ``results.csv``, its plot (16-19) and an
``index.html`` under ``<outputs>/sweeps/<sweep_id>/``.

Single-modality baselines: every fusion strategy carries a face-only head and a voice-only
head trained on the real/fake label (see :mod:`mmdeepfake.fusion.base`). A fusion sweep reports
each run's own heads beside its fused result, in the figure and in its table alike, so the
fused-vs-unimodal comparison is always on the page and every number in it has one source.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mmdeepfake.errors import ConfigError, DatasetError

log = logging.getLogger("mmdeepfake.evaluate")

SWEEP_PARAMS: dict[str, type] = {"lr": float, "batch_size": int, "dropout": float, "fusion": str}
PLOT_FOR_PARAM = {
    "lr": "learning_rate_sensitivity",
    "batch_size": "batch_size_impact",
    "dropout": "dropout_analysis",
    "fusion": "fusion_comparison",
}
# The best epoch's training metrics copied into each sweep row.
TRAINING_METRICS = (
    "epoch",
    "val_auc",
    "val_accuracy",
    "val_loss",
    "train_loss",
    "train_accuracy",
    "val_auc_image",
    "val_auc_audio",
)
RESULT_COLUMNS = (
    "param",
    "value",
    "run_id",
    *TRAINING_METRICS,
    "test_auc",
    "test_accuracy",
    "test_auc_image",
    "test_auc_audio",
    "samples_per_s",
    "seconds",
    "best_model_uri",
)


@dataclass
class SweepResult:
    """Rows (one per value, see ``RESULT_COLUMNS``), the comparison rows and where they went."""

    sweep_id: str
    param: str
    rows: list[dict[str, Any]]
    comparison: list[dict[str, Any]] = field(default_factory=list)
    output_uri: str | None = None


def parse_values(param: str, values: Sequence[str]) -> list[Any]:
    """``["1e-4,3e-4", "1e-3"]`` -> ``[0.0001, 0.0003, 0.001]``; ``fusion all`` -> every strategy."""
    if param not in SWEEP_PARAMS:
        raise ConfigError(f"cannot sweep {param!r}: choose one of {', '.join(SWEEP_PARAMS)}")
    items = [v.strip() for text in values for v in str(text).split(",") if v.strip()]
    if param == "fusion" and items == ["all"]:
        from mmdeepfake.train.config import FUSION_CHOICES

        items = list(FUSION_CHOICES)
    if not items:
        raise ConfigError("--values needs at least one value")
    cast = SWEEP_PARAMS[param]
    try:
        parsed = [cast(v) for v in items]
    except ValueError:
        raise ConfigError(
            f"--values for {param} must be {cast.__name__} numbers, got {items}"
        ) from None
    if len(set(parsed)) != len(parsed):
        raise ConfigError(f"--values has repeated values: {items}")
    return parsed


def _mean(values: Sequence[Any]) -> float | None:
    numbers = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(numbers) / len(numbers) if numbers else None


def _row(param: str, value: Any, result: Any) -> dict[str, Any]:
    best = result.best_metrics
    return {
        "param": param,
        "value": value,
        "run_id": result.run_id,
        **{k: best.get(k) for k in TRAINING_METRICS},
        "samples_per_s": _mean([h.get("samples_per_s") for h in result.history]),
        "seconds": sum(float(h.get("seconds") or 0.0) for h in result.history),
        "best_model_uri": result.best_model_uri,
    }


def fusion_comparison_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plot-19 rows: each strategy followed by its own run's face-only and voice-only heads.

    Every run trains its own unimodal heads, and the runs table lists them per run; the figure
    and its table show the same numbers, one face-only and one voice-only bar per run.
    """
    out = []
    for r in rows:
        name = str(r["value"])
        out.append(
            {
                "name": name,
                "kind": "fusion",
                "run_id": r["run_id"],
                "val_auc": r.get("val_auc"),
                "test_auc": r.get("test_auc"),
            }
        )
        for modality, label in (("image", "face only"), ("audio", "voice only")):
            out.append(
                {
                    "name": f"{label} ({name})",
                    "kind": "unimodal",
                    "run_id": r["run_id"],
                    "val_auc": r.get(f"val_auc_{modality}"),
                    "test_auc": r.get(f"test_auc_{modality}"),
                }
            )
    return out


def run_sweep(
    config: Any,
    param: str,
    values: Sequence[Any],
    *,
    test_split: str | None = "test",
    progress: bool = True,
    sweep_id: str | None = None,
) -> SweepResult:
    """Train once per value of ``param`` (others from ``config``) and write the comparison."""
    from mmdeepfake.train.trainer import train

    if param not in SWEEP_PARAMS:
        raise ConfigError(f"cannot sweep {param!r}: choose one of {', '.join(SWEEP_PARAMS)}")
    if config.resume:
        raise ConfigError("a sweep starts new runs; drop --resume")
    sweep_id = sweep_id or "sweep-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    rows = []
    for value in values:
        run_id = f"{sweep_id}-{param}-{value}"
        log.info("sweep %s: training with %s=%s (run %s)", sweep_id, param, value, run_id)
        changes: dict[str, Any] = {param: value, "run_id": run_id, "push_to_hub": None}
        if param == "batch_size":
            changes["min_batch_size"] = min(config.min_batch_size, int(value))
        sub = config.replace(**changes)  # validates the new value
        row = _row(param, value, train(sub, progress=progress))
        if test_split:
            row.update(_test_metrics(sub, row["best_model_uri"], test_split))
        rows.append(row)
    comparison = fusion_comparison_rows(rows) if param == "fusion" else []
    result = SweepResult(sweep_id=sweep_id, param=param, rows=rows, comparison=comparison)
    result.output_uri = _write(config, result)
    return result


def _test_metrics(config: Any, model_uri: str | None, split: str) -> dict[str, Any]:
    """ROC-AUC and accuracy of a run's best model (and its unimodal heads) on ``split``."""
    from mmdeepfake.evaluate.evaluator import evaluate

    if model_uri is None:
        return {}
    try:
        result = evaluate(
            model_uri,
            bucket=config.bucket,
            prefix=config.prefix,
            endpoint_url=config.endpoint_url,
            data_dir=config.data_dir,
            split=split,
            write=False,
            batch_size=config.batch_size,
            seed=config.seed,
        )
    except DatasetError as exc:
        log.warning("no %s metrics for %s: %s", split, model_uri, exc)
        return {}
    s = result.summary
    return {
        "test_auc": s["metrics"]["roc_auc"],
        "test_accuracy": s["metrics"]["accuracy"],
        "test_auc_image": s["unimodal"]["image"],
        "test_auc_audio": s["unimodal"]["audio"],
    }


def _output_root(config: Any) -> str:
    if config.output:
        return str(config.output)
    return f"s3://{config.bucket}/outputs" if config.bucket else "outputs"


def _write(config: Any, result: SweepResult) -> str:
    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.evaluate import plots
    from mmdeepfake.evaluate.evaluator import csv_text, json_safe
    from mmdeepfake.evaluate.report import build_report

    root = _output_root(config).rstrip("/")
    out = open_storage(f"{root}/sweeps/{result.sweep_id}", endpoint_url=config.endpoint_url)
    out.ensure_bucket()
    payload = {
        "sweep_id": result.sweep_id,
        "param": result.param,
        "rows": result.rows,
        "comparison": result.comparison,
    }
    out.write_text("results.json", json.dumps(json_safe(payload), indent=2) + "\n")
    out.write_text("results.csv", csv_text(result.rows, RESULT_COLUMNS))
    name = PLOT_FOR_PARAM[result.param]
    if result.param == "fusion":
        figure = plots.plot_fusion_comparison(result.comparison)
    else:
        figure = getattr(plots, f"plot_{name}")(result.rows)
    key = f"plots/{plots.PLOT_FILENAMES[name]}"
    out.write_bytes(key, plots.figure_to_png(figure))
    tables = {
        f"Runs ({result.param})": [
            {k: r.get(k) for k in RESULT_COLUMNS if k != "best_model_uri"} for r in result.rows
        ]
    }
    if result.comparison:
        tables["Fusion strategies vs single-modality baselines (ROC-AUC)"] = result.comparison
    out.write_text(
        "index.html",
        build_report(
            f"mmdeepfake sweep: {result.param}",
            summary={"sweep": result.sweep_id},
            tables=tables,
            figures=[key],
        ),
    )
    log.info("sweep results written to %s", out.uri())
    return out.uri()
