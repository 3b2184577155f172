"""The runs of a sweep and of ``--fusion all``: training each value, then the comparison.

See :mod:`mmdeepfake.sweep` for what a sweep writes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmdeepfake.data.storage import open_storage
from mmdeepfake.errors import ConfigError, DatasetError
from mmdeepfake.evaluate.evaluator import csv_text, evaluate, json_safe
from mmdeepfake.outputs import output_root
from mmdeepfake.reports import plots
from mmdeepfake.reports.report import build_report
from mmdeepfake.sweep.params import PLOT_FOR_PARAM, SWEEP_PARAMS
from mmdeepfake.train import distributed as D
from mmdeepfake.train.artifacts import RunArtifacts, new_run_id
from mmdeepfake.train.config import TrainConfig, fusion_choices
from mmdeepfake.train.fit import selection_key
from mmdeepfake.train.hub import push_run_model
from mmdeepfake.train.run_context import output_storage
from mmdeepfake.train.tables import csv_table, format_metric
from mmdeepfake.train.trainer import TrainResult, run_training, train

log = logging.getLogger("mmdeepfake.evaluate")

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


def _train_each(
    config: TrainConfig,
    param: str,
    values: Sequence[Any],
    run_id_of: Callable[[Any], str],
    train_one: Callable[[TrainConfig], TrainResult],
) -> list[tuple[TrainConfig, TrainResult]]:
    """One training run per value of ``param`` (others from ``config``), never pushed: the
    runs of a sweep and of ``--fusion all`` alike."""
    runs = []
    for value in values:
        run_id = run_id_of(value)
        log.info("training with %s=%s (run %s)", param, value, run_id)
        changes: dict[str, Any] = {param: value, "run_id": run_id, "push_to_hub": None}
        if param == "batch_size":
            changes["min_batch_size"] = min(config.min_batch_size, int(value))
        sub = config.replace(**changes)  # validates the new value
        runs.append((sub, train_one(sub)))
    return runs


def run_sweep(
    config: TrainConfig,
    param: str,
    values: Sequence[Any],
    *,
    test_split: str | None = "test",
    progress: bool = True,
    sweep_id: str | None = None,
) -> SweepResult:
    """Train once per value of ``param`` (others from ``config``) and write the comparison."""
    if param not in SWEEP_PARAMS:
        raise ConfigError(f"cannot sweep {param!r}: choose one of {', '.join(SWEEP_PARAMS)}")
    if config.resume:
        raise ConfigError("a sweep starts new runs; drop --resume")
    sweep_id = sweep_id or "sweep-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    log.info("sweep %s: %s over %s", sweep_id, param, ", ".join(map(str, values)))
    runs = _train_each(
        config,
        param,
        values,
        lambda value: f"{sweep_id}-{param}-{value}",
        lambda sub: train(sub, progress=progress),
    )
    rows = []
    for value, (sub, trained) in zip(values, runs):
        row = _row(param, value, trained)
        if test_split:
            row.update(_test_metrics(sub, row["best_model_uri"], test_split))
        rows.append(row)
    comparison = fusion_comparison_rows(rows) if param == "fusion" else []
    result = SweepResult(sweep_id=sweep_id, param=param, rows=rows, comparison=comparison)
    result.output_uri = _write(config, result)
    return result


def _test_metrics(config: TrainConfig, model_uri: str | None, split: str) -> dict[str, Any]:
    """ROC-AUC and accuracy of a run's best model (and its unimodal heads) on ``split``."""
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


def _write(config: TrainConfig, result: SweepResult) -> str:
    root = output_root(config.output, config.bucket).rstrip("/")
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


# --- mmdeepfake-train --fusion all ------------------------------------------------------------

FUSION_TABLE_COLUMNS = ("name", "kind", "run_id", "val_auc", "val_accuracy", "val_loss", "epoch")


def train_every_fusion(config: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Train every registered fusion strategy as its own run (``<run_id>-<fusion>``) and
    compare them on validation; returns the best run, with ``comparison`` listing all of them.

    The comparison goes to the base run id's ``logs/fusion_comparison.json`` and ``.csv``
    (and plot 19); with ``push_to_hub`` the best run's model is pushed. All runs share one
    process group, so this works under torchrun like a single run.
    """
    if config.resume:
        raise ConfigError(
            "--resume continues one run; with --fusion all, resume each strategy's run by its "
            "run id (RUN_ID-<fusion>) and --fusion <that strategy>"
        )
    config.check_source()
    dist = D.init_distributed(config.device)
    try:
        base = D.broadcast_object(config.run_id or new_run_id())
        runs = _train_each(
            config,
            "fusion",
            fusion_choices(),
            lambda fusion: f"{base}-{fusion}",
            lambda sub: run_training(sub, dist, progress),
        )
        results = {sub.fusion: result for sub, result in runs}
        rows = fusion_table(results)
        best_fusion = max(results, key=lambda f: selection_key(results[f].best_metrics))
        best = results[best_fusion]
        best.comparison = rows
        if dist.is_main:
            storage = output_storage(config)
            out = RunArtifacts(storage, base)
            out.write_text("logs", "fusion_comparison.json", json.dumps(rows, indent=2))
            out.write_text("logs", "fusion_comparison.csv", csv_table(rows, FUSION_TABLE_COLUMNS))
            if config.plots:
                out.write_bytes(
                    "plots",
                    plots.PLOT_FILENAMES["fusion_comparison"],
                    plots.figure_to_png(plots.plot_fusion_comparison(rows)),
                )
            log.info(
                "fusion comparison (validation ROC-AUC): %s; best: %s",
                ", ".join(f"{r['name']}={format_metric(r['val_auc'])}" for r in rows),
                best_fusion,
            )
            if config.push_to_hub:
                push_run_model(storage, best.run_id, config.push_to_hub)
        return best
    finally:
        D.shutdown()


def fusion_table(results: dict[str, TrainResult]) -> list[dict[str, Any]]:
    """One validation row per strategy, and the image-only and audio-only heads of the late
    run (its unimodal heads are its whole decision)."""
    rows = []
    for fusion, result in results.items():
        m = result.best_metrics
        rows.append(
            {
                "name": fusion,
                "kind": "fusion",
                "run_id": result.run_id,
                "val_auc": m.get("val_auc"),
                "val_accuracy": m.get("val_accuracy"),
                "val_loss": m.get("val_loss"),
                "epoch": m.get("epoch"),
            }
        )
        for modality in ("image", "audio"):
            if m.get(f"val_auc_{modality}") is not None and fusion == "late":
                rows.append(
                    {
                        "name": f"{modality} only",
                        "kind": "unimodal",
                        "run_id": result.run_id,
                        "val_auc": m[f"val_auc_{modality}"],
                    }
                )
    return rows
