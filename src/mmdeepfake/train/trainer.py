"""The training loop behind ``mmdeepfake-train``.

One call of :func:`train` runs a whole experiment: it checks the data source at start-up (so a
missing bucket or an empty split fails in seconds, not after an epoch), streams pairs from
storage, trains with DistributedDataParallel when launched by torchrun, lets the memory guard
pick the batch size, checkpoints every epoch (and on SIGINT/SIGTERM), keeps the best model by
validation ROC-AUC, calibrates it with a temperature fitted on the validation split, writes the
logs, plots and intermediate files, and optionally pushes the model to the Hugging Face Hub.
With ``fusion="all"`` it trains every strategy and writes a comparison.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import signal
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmdeepfake.data.layout import PairedSample, clip_id
from mmdeepfake.data.storage import Storage, open_storage
from mmdeepfake.errors import ConfigError, MemoryBudgetError, MmDeepfakeError
from mmdeepfake.train import distributed as D
from mmdeepfake.train.artifacts import (
    RunArtifacts,
    capture_rng_state,
    find_latest_run,
    new_run_id,
    restore_rng_state,
)
from mmdeepfake.train.config import FUSION_CHOICES, TrainConfig
from mmdeepfake.train.memory import MemoryGuard, format_bytes

log = logging.getLogger("mmdeepfake.train")

METRIC_COLUMNS = (
    "epoch", "train_loss", "val_loss", "train_accuracy", "val_accuracy", "val_auc",
    "val_auc_image", "val_auc_audio", "val_face_emotion_accuracy",
    "val_voice_emotion_accuracy", "lr", "batch_size", "seconds", "samples_per_s",
    "skipped_samples", "faces_not_detected",
)
PREDICTION_COLUMNS = (
    "image_key", "audio_key", "label", "fake_logit", "fake_probability", "image_logit",
    "audio_logit", "consistency", "face_emotion_true", "face_emotion_pred",
    "face_emotion_confidence", "voice_emotion_true", "voice_emotion_pred",
    "voice_emotion_confidence",
)
# Architecture keys: a resumed run keeps those of its checkpoint.
_ARCHITECTURE_KEYS = ("fusion", "model", "dropout")


class TrainingInterrupted(MmDeepfakeError):
    """SIGINT/SIGTERM arrived; a checkpoint was saved and the run can be resumed."""

    exit_code = 130


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


# --- public entry point ---------------------------------------------------------------------


def train(config: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Run the experiment described by ``config``; see the module docstring.

    With ``fusion="all"`` every strategy is trained as its own run (``<run_id>-<fusion>``)
    and the returned result is the best one, with ``comparison`` listing all of them.
    """
    config.check_source()
    dist = D.init_distributed(config.device)
    try:
        if config.fusion == "all":
            return _train_all(config, dist, progress)
        return _Run(config, dist, progress).run()
    finally:
        D.shutdown()


def _train_all(config: TrainConfig, dist: D.DistInfo, progress: bool) -> TrainResult:
    if config.resume:
        raise ConfigError(
            "--resume continues one run; with --fusion all, resume each strategy's run by its "
            "run id (RUN_ID-<fusion>) and --fusion <that strategy>"
        )
    base = D.broadcast_object(config.run_id or new_run_id())
    results = {}
    for fusion in FUSION_CHOICES:
        sub = config.replace(fusion=fusion, run_id=f"{base}-{fusion}", push_to_hub=None)
        results[fusion] = _Run(sub, dist, progress).run()
    rows = []
    for fusion, result in results.items():
        m = result.best_metrics
        rows.append({"name": fusion, "kind": "fusion", "run_id": result.run_id,
                     "val_auc": m.get("val_auc"), "val_accuracy": m.get("val_accuracy"),
                     "val_loss": m.get("val_loss"), "epoch": m.get("epoch")})
        for modality in ("image", "audio"):
            if m.get(f"val_auc_{modality}") is not None and fusion == "late":
                rows.append({"name": f"{modality} only", "kind": "unimodal",
                             "run_id": result.run_id, "val_auc": m[f"val_auc_{modality}"]})
    best_fusion = max(results, key=lambda f: _score(results[f].best_metrics))
    best = results[best_fusion]
    best.comparison = rows
    if dist.is_main:
        storage = _output_storage(config)
        out = RunArtifacts(storage, base)
        out.write_text("logs", "fusion_comparison.json", json.dumps(rows, indent=2))
        out.write_text("logs", "fusion_comparison.csv", _csv(rows, ("name", "kind", "run_id",
                                                                   "val_auc", "val_accuracy",
                                                                   "val_loss", "epoch")))
        if config.plots:
            from mmdeepfake.evaluate import plots

            out.write_bytes("plots", plots.PLOT_FILENAMES["fusion_comparison"],
                            plots.figure_to_png(plots.plot_fusion_comparison(rows)))
        log.info("fusion comparison (validation ROC-AUC): %s; best: %s",
                 ", ".join(f"{r['name']}={_fmt(r['val_auc'])}" for r in rows), best_fusion)
        if config.push_to_hub:
            from mmdeepfake.train.hub import push_run_model

            push_run_model(storage, best.run_id, config.push_to_hub)
    return best


def _score(metrics: dict[str, Any]) -> tuple[float, float]:
    """Model selection key: validation ROC-AUC, then lower validation loss."""
    auc = metrics.get("val_auc")
    auc = -1.0 if auc is None or math.isnan(auc) else float(auc)
    loss = metrics.get("val_loss")
    return auc, -(float(loss) if loss is not None and not math.isnan(loss) else math.inf)


def _fmt(value: Any) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else (
        f"{value:.4f}" if isinstance(value, float) else str(value))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return value


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()


def _output_storage(config: TrainConfig) -> Storage:
    if config.output:
        return open_storage(config.output, endpoint_url=config.endpoint_url)
    if config.bucket:
        return open_storage(f"s3://{config.bucket}/outputs/", endpoint_url=config.endpoint_url)
    return open_storage("outputs")


# --- logging --------------------------------------------------------------------------------


class _LogCapture:
    """Collects the run's log lines in memory; they are uploaded to logs/train.log.

    Console output is left to the application's logging set-up (the CLI logs INFO to stderr
    on rank 0 and warnings only on the other ranks).
    """

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                                    "%Y-%m-%d %H:%M:%S"))
        self.logger = logging.getLogger("mmdeepfake")
        self._old_level = self.logger.level

    def __enter__(self) -> _LogCapture:  # noqa: PYI034
        self.logger.setLevel(logging.INFO)
        self.logger.addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self.handler)
        self.logger.setLevel(self._old_level)

    def text(self) -> str:
        return self.buffer.getvalue()


# --- signals --------------------------------------------------------------------------------


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked after every step (main thread only)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:  # noqa: PYI034
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signal_name is not None:  # a second signal: give up on the clean stop
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# --- batches --------------------------------------------------------------------------------


class _BatchBuffer:
    """Re-slices loader batches to the batch size the memory guard asks for at each step."""

    def __init__(self, loader: Any) -> None:
        # Started on the first take: starting a DataLoader draws its base seed from the RNG.
        self.loader = loader
        self.it: Iterator[dict[str, Any]] | None = None
        self.current: dict[str, Any] | None = None
        self.pos = 0
        self.skipped: list[Any] = []

    def take(self, n: int) -> dict[str, Any] | None:
        parts = []
        have = 0
        while have < n:
            if self.current is None or self.pos >= len(self.current["labels"]):
                if self.it is None:
                    self.it = iter(self.loader)
                batch = next(self.it, None)
                if batch is None:
                    break
                self.skipped.extend(batch["skipped"])
                if batch["faces"] is None:
                    self.current = None
                    continue
                self.current, self.pos = batch, 0
            k = min(n - have, len(self.current["labels"]) - self.pos)
            parts.append({key: value[self.pos:self.pos + k] for key, value in self.current.items()
                          if key != "skipped"})
            self.pos += k
            have += k
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return {key: (torch.cat([p[key] for p in parts]) if torch.is_tensor(parts[0][key])
                      else [x for p in parts for x in p[key]]) for key in parts[0]}


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v
            for k, v in batch.items()}


# --- one run --------------------------------------------------------------------------------


class _Run:
    """State of one training run (one fusion strategy, one run id)."""

    def __init__(self, config: TrainConfig, dist: D.DistInfo, progress: bool) -> None:
        self.config = config
        self.dist = dist
        self.progress = progress and dist.is_main
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.skipped_total = 0
        self.global_step = 0
        self.start_epoch = 0
        self.previous_log = ""
        self.previous_memory_rows: list[str] = []
        self.last_predictions: list[dict[str, Any]] = []
        self._steps_in_epoch = 0

    # -- setup ------------------------------------------------------------------------------

    def _open_data(self) -> None:
        from mmdeepfake.data.layout import pair_samples, scan_dataset

        c = self.config
        if c.bucket:
            self.data = open_storage(f"s3://{c.bucket}/", endpoint_url=c.endpoint_url)
            prefix = c.prefix
        else:
            root = Path(c.data_dir).expanduser()
            if not root.is_dir():
                raise ConfigError(f"--data {c.data_dir}: no such folder; give the folder that "
                                  "holds frames/, audio/ (and labels/emotions.csv)")
            self.data = open_storage(root)
            prefix = c.prefix if (root / c.prefix).is_dir() else ""
        self.index = scan_dataset(self.data, prefix)
        self.val_samples = pair_samples(self.index, "validate", c.seed)
        pair_samples(self.index, "train", c.seed)  # fails now, not after set-up, if empty
        log.info("dataset %s", self.data.uri(self.index.prefix))
        for line in self.index.summary().splitlines():  # one log event per line of the log
            log.info("dataset %s", line)

    def _open_outputs(self) -> None:
        c = self.config
        self.out_storage = _output_storage(c)
        if self.dist.is_main:
            self.out_storage.ensure_bucket()
        run_id = c.run_id
        if c.resume and self.dist.is_main:
            run_id = (find_latest_run(self.out_storage) if c.resume == "latest" else c.resume)
        run_id = D.broadcast_object(run_id or new_run_id())
        self.out = RunArtifacts(self.out_storage, run_id, writer=self.dist.is_main)

    def _build(self) -> None:
        from mmdeepfake.detector import Detector
        from mmdeepfake.losses import DetectionLoss

        c = self.config
        checkpoint = None
        if c.resume:
            checkpoint = self.out.load_latest_checkpoint()
            saved = json.loads(checkpoint["config_json"])
            changed = [k for k in _ARCHITECTURE_KEYS if saved.get(k) != getattr(c, k)]
            if changed:
                log.warning("resuming run %s with its own architecture (%s from the checkpoint)",
                            self.out.run_id, ", ".join(changed))
            self.config = c = c.replace(**{k: saved[k] for k in _ARCHITECTURE_KEYS})
        torch.manual_seed(c.seed)
        kwargs = dict(c.model)
        kwargs.update(fusion=c.fusion, dropout=c.dropout)
        try:
            self.detector = Detector(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"invalid model options {c.model}: {exc}") from None
        self.detector.to(self.dist.device)
        self.loss_fn = DetectionLoss(emotion_weight=c.emotion_weight,
                                     consistency_weight=c.consistency_weight, margin=c.margin)
        self.optimizer = torch.optim.AdamW(self.detector.parameters(), lr=c.lr,
                                           weight_decay=c.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=max(c.epochs, 1), eta_min=c.lr * 0.05)
        self.guard = MemoryGuard(c.batch_size, budget_bytes=c.memory_budget_bytes,
                                 min_batch_size=c.min_batch_size)
        # Dropout differs per rank; a resumed run continues the RNG stream of its checkpoint.
        torch.manual_seed(c.seed * 1000 + self.dist.rank)
        if checkpoint is not None:
            self._restore(checkpoint)
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.dist.device.index] if self.dist.device.type == "cuda" else None
            self.model: torch.nn.Module = DistributedDataParallel(
                self.detector, device_ids=ids, find_unused_parameters=True)
        else:
            self.model = self.detector

    def _restore(self, state: dict[str, Any]) -> None:
        self.detector.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"])
        self.start_epoch = int(state["epoch"])
        self.global_step = int(state["global_step"])
        self.history = json.loads(state["history_json"])
        self.best = json.loads(state["best_json"])
        self.skipped_total = int(state["skipped_total"])
        self.guard.batch_size = max(self.config.min_batch_size,
                                    min(int(state["batch_size"]), self.config.batch_size))
        for name in ("train.log",):
            key = self.out.key("logs", name)
            if self.out_storage.exists(key):
                self.previous_log = self.out_storage.read_text(key)
        key = self.out.key("intermediate", "memory.csv")
        if self.out_storage.exists(key):
            self.previous_memory_rows = self.out_storage.read_text(key).splitlines()[1:]
        log.info("resumed run %s from its checkpoint after epoch %d (step %d)", self.out.run_id,
                 self.start_epoch, self.global_step)

    # -- checkpoints and files --------------------------------------------------------------

    def _checkpoint(self, epoch_done: int, name: str, step_in_epoch: int = 0) -> str:
        state = {
            "epoch": epoch_done,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "model": self.detector.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng_state(),
            "config_json": json.dumps(self.config.to_dict()),
            "history_json": json.dumps(self.history),
            "best_json": json.dumps(self.best),
            "skipped_total": self.skipped_total,
            "batch_size": self.guard.batch_size,
            "run_id": self.out.run_id,
        }
        key = self.out.save_checkpoint(state, name)
        if self.dist.is_main:
            log.info("checkpoint saved: %s", self.out_storage.uri(key))
        return key

    def _write_logs(self, capture: _LogCapture) -> None:
        if not self.dist.is_main:
            return
        self.out.write_text("logs", "train.log", self.previous_log + capture.text())
        self.out.write_text("logs", "metrics.csv", _csv(self.history, METRIC_COLUMNS))
        memory = self.guard.to_csv().splitlines()
        rows = memory[:1] + self.previous_memory_rows + memory[1:]
        self.out.write_text("intermediate", "memory.csv", "\n".join(rows) + "\n")

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> TrainResult:
        with _LogCapture() as capture, _StopFlag() as stop:
            self._open_data()
            self._open_outputs()
            self._build()
            c = self.config
            if self.dist.is_main:
                log.info("run %s: fusion %s, %d epoch(s), batch size %d, %d rank(s), device %s; "
                         "outputs in %s", self.out.run_id, c.fusion, c.epochs, c.batch_size,
                         self.dist.world_size, self.dist.device, self.out.uri())
                log.info(self.guard.describe())
            try:
                for epoch in range(self.start_epoch, c.epochs):
                    row = self._epoch(epoch, stop)
                    self._after_epoch(epoch, row)
                    self._checkpoint(epoch + 1, f"epoch_{epoch + 1:04d}.pt")
                    self._write_logs(capture)
            except (MemoryBudgetError, TrainingInterrupted) as exc:
                self._checkpoint(self._epochs_done(), "interrupted.pt", self._steps_in_epoch)
                log.error("%s", exc)
                self._write_logs(capture)
                raise
            result = self._finish()
            self._write_logs(capture)
        return result

    def _epochs_done(self) -> int:
        return len(self.history)

    def _epoch(self, epoch: int, stop: _StopFlag) -> dict[str, Any]:
        from mmdeepfake.data.layout import pair_samples
        from mmdeepfake.data.streaming import build_split_loader

        c, dist = self.config, self.dist
        # Random pairs are drawn again each epoch (more face/voice combinations); the layout
        # module logs how many pairs are true and how many random.
        samples = pair_samples(self.index, "train", c.seed + epoch)
        loader = build_split_loader(
            self.data, self.index, "train", c.batch_size, seed=c.seed, shuffle=True,
            num_workers=c.num_workers, prefetch=c.prefetch, rank=dist.rank,
            world_size=dist.world_size, s3_reader=c.s3_reader, samples=samples,
            face_margin=self.detector.face_margin)
        loader.dataset.set_epoch(epoch)
        per_rank = len(loader.dataset)
        total_steps = math.ceil(per_rank / max(self.guard.batch_size, 1))
        if c.max_steps_per_epoch:
            total_steps = min(total_steps, c.max_steps_per_epoch)
        buffer = _BatchBuffer(loader)
        self.model.train()
        sums = np.zeros(4)  # loss * n, correct, n, faces not detected
        started = time.perf_counter()
        self._steps_in_epoch = 0
        bar = None
        if self.progress:
            from tqdm import tqdm

            # disable=None: a bar on a terminal only; a redirected log keeps one event per line
            bar = tqdm(total=total_steps, desc=f"epoch {epoch + 1}/{c.epochs}", unit="step",
                       leave=False, dynamic_ncols=True, disable=None)
        problem: MemoryBudgetError | None = None
        try:
            while True:
                if c.max_steps_per_epoch and self._steps_in_epoch >= c.max_steps_per_epoch:
                    break
                # Every rank takes the same number of steps with the same batch size, or the
                # gradient all-reduce of DistributedDataParallel would wait forever.
                batch_size = D.all_reduce_min(self.guard.batch_size)
                # A stop already requested takes no batch: starting the loader draws from the
                # RNG, and the checkpoint must hold the state this epoch started from.
                stopping = stop.signal_name is not None or problem is not None
                batch = None if stopping else buffer.take(batch_size)
                ok = batch is not None and not stopping
                if not D.all_reduce_min(int(ok)):
                    break
                loss, correct, n = self._step(batch)
                sums += (loss * n, correct, n, int((~batch["face_detected"]).sum()))
                self._steps_in_epoch += 1
                self.global_step += 1
                try:
                    self.guard.check(self.global_step)
                except MemoryBudgetError as exc:
                    problem = exc
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.3f}", bs=batch_size)
                if self._steps_in_epoch % c.log_every == 0 and dist.is_main:
                    log.info("epoch %d step %d: loss %.4f, batch size %d, memory %s", epoch + 1,
                             self._steps_in_epoch, loss, batch_size,
                             format_bytes(self.guard.samples[-1].rss_bytes))
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - started
        if not D.all_reduce_min(int(problem is None)):
            raise problem or MemoryBudgetError(
                "another rank could not stay under its memory cap; a checkpoint was saved. "
                "Raise --memory-budget or use a smaller model, then --resume latest")
        if not D.all_reduce_min(int(stop.signal_name is None)):
            raise TrainingInterrupted(
                f"training stopped by {stop.signal_name or 'a signal on another rank'} during "
                f"epoch {epoch + 1}; a checkpoint was saved. Continue with --resume "
                f"{self.out.run_id}"
            )
        loss_sum, correct, n, no_face = D.all_reduce_sum(list(sums))
        skipped = self._collect_skipped(buffer.skipped, "train")
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        val = self._validate(epoch)
        return {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(n, 1),
            "train_accuracy": correct / max(n, 1),
            "lr": lr,
            "batch_size": self.guard.batch_size,
            "seconds": seconds,
            "samples_per_s": n / seconds if seconds > 0 else math.nan,
            "skipped_samples": skipped + val.pop("skipped"),
            "faces_not_detected": int(no_face),
            **val,
        }

    def _step(self, batch: dict[str, Any]) -> tuple[float, int, int]:
        b = _to_device(batch, self.dist.device)
        output = self.model(b["faces"], b["waves"])
        losses = self.loss_fn(output, b["labels"], b["face_emotions"], b["voice_emotions"])
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.detector.parameters(), self.config.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            correct = int(((output.fake_logit > 0).float() == b["labels"]).sum())
        return float(losses["total"].detach()), correct, len(b["labels"])

    def _collect_skipped(self, skipped: list[Any], split: str) -> int:
        everyone = D.all_gather_objects([(s.key, s.reason) for s in skipped])
        items = [item for part in everyone for item in part]
        if items and self.dist.is_main:
            for key, reason in items:
                log.warning("skipped a bad %s sample: %s (%s)", split, key, reason)
        self.skipped_total += len(items)
        return len(items)

    @torch.no_grad()
    def _validate(self, epoch: int) -> dict[str, Any]:
        from mmdeepfake.data.streaming import build_split_loader
        from mmdeepfake.evaluate.metrics import compute_metrics

        c, dist = self.config, self.dist
        loader = build_split_loader(
            self.data, self.index, "validate", max(self.guard.batch_size, 1), seed=c.seed,
            num_workers=c.num_workers, prefetch=c.prefetch, rank=dist.rank,
            world_size=dist.world_size, s3_reader=c.s3_reader, samples=self.val_samples,
            equal_shards=False, face_margin=self.detector.face_margin)
        self.detector.eval()
        rows: list[dict[str, Any]] = []
        loss_sum = 0.0
        skipped: list[Any] = []
        for batch in loader:
            skipped.extend(batch["skipped"])
            if batch["faces"] is None:
                continue
            b = _to_device(batch, dist.device)
            out = self.detector(b["faces"], b["waves"])
            losses = self.loss_fn(out, b["labels"], b["face_emotions"], b["voice_emotions"])
            loss_sum += float(losses["total"]) * len(b["labels"])
            rows.extend(_prediction_rows(batch, out))
        self.detector.train()
        gathered = D.all_gather_objects((rows, loss_sum))
        rows = [r for part, _ in gathered for r in part]
        loss_sum = sum(s for _, s in gathered)
        n_skipped = self._collect_skipped(skipped, "validation")
        self.last_predictions = rows
        y = np.array([r["label"] for r in rows], dtype=np.int64)
        logits = np.array([r["fake_logit"] for r in rows], dtype=np.float64)
        if not rows:
            return {"val_loss": math.nan, "val_accuracy": math.nan, "val_auc": math.nan,
                    "skipped": n_skipped}
        metrics = compute_metrics(y, 1.0 / (1.0 + np.exp(-logits)))
        result = {"val_loss": loss_sum / len(rows), "val_accuracy": metrics["accuracy"],
                  "val_auc": metrics["roc_auc"], "skipped": n_skipped}
        for modality in ("image", "audio"):
            scores = [r[f"{modality}_logit"] for r in rows]
            if all(s is not None for s in scores):
                result[f"val_auc_{modality}"] = compute_metrics(y, np.array(scores))["roc_auc"]
        for who in ("face", "voice"):
            known = [r for r in rows if r[f"{who}_emotion_true"] >= 0]
            if known:
                result[f"val_{who}_emotion_accuracy"] = float(np.mean(
                    [r[f"{who}_emotion_true"] == r[f"{who}_emotion_pred"] for r in known]))
        return result

    def _after_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        self.history.append(row)
        if self.dist.is_main:
            log.info("epoch %d/%d: train loss %.4f acc %.3f | val loss %s acc %s AUC %s | "
                     "%.1f samples/s, %d skipped", epoch + 1, self.config.epochs,
                     row["train_loss"], row["train_accuracy"], _fmt(row["val_loss"]),
                     _fmt(row["val_accuracy"]), _fmt(row["val_auc"]), row["samples_per_s"],
                     row["skipped_samples"])
            if row["faces_not_detected"]:
                log.warning("epoch %d: no face detected in %d training images; they were "
                            "centre-cropped", epoch + 1, row["faces_not_detected"])
        if not self.best or _score(row) > _score(self.best):
            self.best = dict(row)
            if self.dist.is_main:
                self.detector.with_config(metadata=self._metadata(row))
                self.out.save_detector(self.detector)
                self.out.write_text("intermediate", "val_predictions.csv",
                                    _csv(self.last_predictions, PREDICTION_COLUMNS))
                log.info("best model so far (epoch %d, val AUC %s) saved to %s", epoch + 1,
                         _fmt(row["val_auc"]), self.out.uri("models", "best"))

    def _metadata(self, row: dict[str, Any]) -> dict[str, Any]:
        from mmdeepfake.data.synth import CLIPS_CSV

        # Only mmdeepfake-synth writes labels/clips.csv: its presence marks synthetic data.
        synthetic = self.data.exists(self.index.prefix + CLIPS_CSV)
        return {
            "run_id": self.out.run_id,
            "trained_on": self.data.uri(self.index.prefix),
            "training_data": (f"mmdeepfake-synth synthetic faces and voices at "
                              f"{self.data.uri(self.index.prefix)}" if synthetic else
                              f"the dataset at {self.data.uri(self.index.prefix)}"),
            "synthetic_data": synthetic,
            "epoch": row["epoch"],
            "val_metrics": {k: row.get(k) for k in ("val_loss", "val_accuracy", "val_auc",
                                                     "val_auc_image", "val_auc_audio")
                            if row.get(k) is not None},
            "training": {k: getattr(self.config, k) for k in ("epochs", "batch_size", "lr",
                                                               "weight_decay", "emotion_weight",
                                                               "consistency_weight", "seed")},
        }

    # -- the end ----------------------------------------------------------------------------

    def _finish(self) -> TrainResult:
        calibration: dict[str, Any] = {}
        if self.dist.is_main:
            calibration = self._calibrate()
            guard = self._fit_guard()
            if self.config.plots:
                self._plots(calibration)
            summary = {"run_id": self.out.run_id, "best": self.best, "calibration": {
                k: v for k, v in calibration.items() if k != "abstention"},
                "domain_guard": guard,
                "skipped_samples": self.skipped_total,
                "peak_rss_bytes": self.guard.peak_bytes, "config": self.config.to_dict()}
            self.out.write_text("logs", "summary.json", json.dumps(summary, indent=2,
                                                                   default=str))
            log.info("run %s done: best epoch %s, val AUC %s; %d sample(s) skipped; peak memory "
                     "%s; outputs in %s", self.out.run_id, self.best.get("epoch"),
                     _fmt(self.best.get("val_auc")), self.skipped_total,
                     format_bytes(self.guard.peak_bytes), self.out.uri())
            if self.config.push_to_hub:
                from mmdeepfake.train.hub import push_run_model

                push_run_model(self.out_storage, self.out.run_id, self.config.push_to_hub)
        D.barrier()
        return TrainResult(
            run_id=self.out.run_id, output_uri=self.out.uri(), history=self.history,
            best_metrics=self.best, best_model_uri=self.out.uri("models", "best"),
            skipped_samples=self.skipped_total, peak_rss_bytes=self.guard.peak_bytes,
            calibration=calibration)

    def _best_predictions(self) -> list[dict[str, str]]:
        text = self.out_storage.read_text(self.out.key("intermediate", "val_predictions.csv"))
        return list(csv.DictReader(io.StringIO(text)))

    def _calibrate(self) -> dict[str, Any]:
        """Fit a temperature on the best model's validation logits; store it in its config."""
        from mmdeepfake.evaluate.calibration import calibration_summary, fit_temperature
        from mmdeepfake.loading import load_run_detector

        rows = self._best_predictions()
        logits = np.array([float(r["fake_logit"]) for r in rows])
        labels = np.array([int(r["label"]) for r in rows])
        if len(set(labels.tolist())) < 2:
            log.warning("validation split has one class only: temperature left at 1.0")
            return {}
        temperature = float(fit_temperature(logits, labels))
        summary = calibration_summary(logits, labels, temperature)
        detector = load_run_detector(self.out_storage, self.out.run_id)
        metadata = dict(detector.metadata)
        metadata["calibration"] = {k: summary[k] for k in ("temperature", "ece_before",
                                                           "ece_after")}
        detector.with_config(temperature=temperature, metadata=metadata)
        self.out.save_detector(detector)
        log.info("calibration on validation: temperature %.3f, ECE %.4f -> %.4f", temperature,
                 summary["ece_before"], summary["ece_after"])
        return summary

    def _fit_guard(self) -> dict[str, Any]:
        """Fit the best model's unfamiliar-input guard (and one-modality head calibration) on
        its own embeddings of the train split, with limits from the validation split; store it
        with the model and return the familiar share of each split."""
        from mmdeepfake.domain import embed_split, familiar_shares, fit_detector_guard
        from mmdeepfake.loading import load_run_detector

        detector = load_run_detector(self.out_storage, self.out.run_id).to(self.dist.device)
        seed = self.config.seed
        train = embed_split(detector, self.data, self.index, "train", seed=seed)
        validation = embed_split(detector, self.data, self.index, "validate", seed=seed)
        record = fit_detector_guard(detector, train, validation,
                                    source=f"train split of {self.data.uri(self.index.prefix)}")
        self.out.save_detector(detector)
        shares = {"train": familiar_shares(detector, train),
                  "validate": familiar_shares(detector, validation)}
        log.info("unfamiliar-input guard: limits image %.2f, audio %.2f; familiar share %s",
                 record["image"]["limit"], record["audio"]["limit"], json.dumps(shares))
        return {"limits": {m: record[m]["limit"] for m in ("image", "audio")},
                "familiar_share": shares}

    def _plots(self, calibration: dict[str, Any]) -> None:
        from mmdeepfake.evaluate import plots

        rows = self._best_predictions()
        y = np.array([int(r["label"]) for r in rows])
        logits = np.array([float(r["fake_logit"]) for r in rows])
        real_images, fake_images, real_waves, fake_waves = self._sample_media()
        figures = {
            "data_distribution": lambda: plots.plot_data_distribution(self.index.counts()),
            "audio_samples": lambda: plots.plot_audio_samples(real_waves, fake_waves),
            "image_samples": lambda: plots.plot_image_samples(real_images, fake_images),
            "loss_curves": lambda: plots.plot_loss_curves(self.history),
            "accuracy_curves": lambda: plots.plot_accuracy_curves(self.history),
            "emotion_consistency_heatmap": lambda: plots.plot_emotion_consistency_heatmap(
                [int(r["face_emotion_pred"]) for r in rows],
                [int(r["voice_emotion_pred"]) for r in rows], y),
            "confusion_matrix": lambda: plots.plot_confusion_matrix(y, (logits > 0).astype(int)),
            "memory_usage": lambda: plots.plot_memory_usage(
                self.guard.samples_for_plot(), self.guard.cap_bytes, self.guard.limit_bytes),
        }
        if calibration:
            t = calibration["temperature"]
            figures["reliability_diagram"] = lambda: plots.plot_reliability_diagram(
                1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(-logits / t)), y)
        for name, make in figures.items():
            fig = make()
            self.out.write_bytes("plots", plots.PLOT_FILENAMES[name], plots.figure_to_png(fig))
        log.info("plots written to %s", self.out.uri("plots"))

    def _sample_media(self) -> tuple[list, list, list, list]:
        """Validation faces and voices per label for plots 02/03, each from a different clip.

        A clip has several frames and one recording; consecutive samples share them, so taking
        the first few samples would show one clip several times over.
        """
        from mmdeepfake.media.decode import load_audio, load_image

        def read(label: int, key: str, count: int, load: Any) -> list:
            found = []
            for sample in distinct_clip_samples(self.val_samples, label, key):
                try:
                    found.append(load(self.data.read_bytes(getattr(sample, key))))
                except MmDeepfakeError:
                    continue
                if len(found) == count:
                    break
            return found

        return (read(0, "image_key", 4, load_image), read(1, "image_key", 4, load_image),
                read(0, "audio_key", 3, load_audio), read(1, "audio_key", 3, load_audio))


def distinct_clip_samples(
    samples: Iterable[PairedSample], label: int, key: str = "image_key"
) -> Iterator[PairedSample]:
    """The samples of ``label`` whose ``key`` file ("image_key" or "audio_key") comes from a clip
    not seen before, in order: one sample per clip."""
    seen: set[str] = set()
    for sample in samples:
        clip = clip_id(getattr(sample, key))
        if sample.label == label and clip not in seen:
            seen.add(clip)
            yield sample


def _prediction_rows(batch: dict[str, Any], out: Any) -> list[dict[str, Any]]:
    """Per-sample validation outputs: fake score and face/voice emotion predictions."""
    face = out.face_emotion_logits.softmax(-1).cpu()
    voice = out.voice_emotion_logits.softmax(-1).cpu()
    logit = out.fake_logit.float().cpu()
    image_logit = out.modality_logits.get("image")
    audio_logit = out.modality_logits.get("audio")
    consistency = out.consistency.float().cpu()
    rows = []
    for i in range(len(batch["labels"])):
        rows.append({
            "image_key": batch["image_keys"][i],
            "audio_key": batch["audio_keys"][i],
            "label": int(batch["labels"][i]),
            "fake_logit": float(logit[i]),
            "fake_probability": float(torch.sigmoid(logit[i])),
            "image_logit": float(image_logit[i]) if image_logit is not None else None,
            "audio_logit": float(audio_logit[i]) if audio_logit is not None else None,
            "consistency": float(consistency[i]),
            "face_emotion_true": int(batch["face_emotions"][i]),
            "face_emotion_pred": int(face[i].argmax()),
            "face_emotion_confidence": float(face[i].max()),
            "voice_emotion_true": int(batch["voice_emotions"][i]),
            "voice_emotion_pred": int(voice[i].argmax()),
            "voice_emotion_confidence": float(voice[i].max()),
        })
    return rows
