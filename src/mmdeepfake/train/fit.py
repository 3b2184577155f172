"""The fit loop: epochs of training steps, validation, the best model and checkpoints.

:class:`FitLoop` builds the detector, its loss and optimiser (or restores them from a
checkpoint), then runs the epochs: every step takes the batch size the memory guard allows,
every epoch ends with a validation pass, keeps the model if it is the best so far (validation
ROC-AUC, then lower loss) and saves a checkpoint. SIGINT/SIGTERM and a memory cap stop it
cleanly: a checkpoint is saved and the run can be resumed exactly where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from mmdeepfake.data.clip_labels import head_targets
from mmdeepfake.data.streaming import build_split_loader
from mmdeepfake.detector import Detector
from mmdeepfake.errors import ConfigError, MemoryBudgetError, MmDeepfakeError
from mmdeepfake.losses import DetectionLoss
from mmdeepfake.metrics import compute_metrics, roc_auc
from mmdeepfake.train import distributed as D
from mmdeepfake.train.artifacts import capture_rng_state, restore_rng_state
from mmdeepfake.train.memory import MemoryGuard, format_bytes
from mmdeepfake.train.run_context import PREDICTIONS_FILE, LogCapture, RunContext
from mmdeepfake.train.tables import csv_table, format_metric

log = logging.getLogger("mmdeepfake.train")

PREDICTION_COLUMNS = (
    "image_key",
    "audio_key",
    "label",
    "fake_logit",
    "fake_probability",
    "image_logit",
    "audio_logit",
    "image_label",
    "audio_label",
    "consistency",
    "face_emotion_true",
    "face_emotion_pred",
    "face_emotion_confidence",
    "voice_emotion_true",
    "voice_emotion_pred",
    "voice_emotion_confidence",
)
# Architecture keys: a resumed run keeps those of its checkpoint.
_ARCHITECTURE_KEYS = ("fusion", "model", "dropout")


class TrainingInterrupted(MmDeepfakeError):
    """SIGINT/SIGTERM arrived; a checkpoint was saved and the run can be resumed."""

    exit_code = 130


def selection_key(metrics: dict[str, Any]) -> tuple[float, float]:
    """Model selection key: validation ROC-AUC, then lower validation loss."""
    auc = metrics.get("val_auc")
    auc = -1.0 if auc is None or math.isnan(auc) else float(auc)
    loss = metrics.get("val_loss")
    return auc, -(float(loss) if loss is not None and not math.isnan(loss) else math.inf)


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked after every step (main thread only)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:  # noqa: PYI034
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
            parts.append(
                {
                    key: value[self.pos : self.pos + k]
                    for key, value in self.current.items()
                    if key != "skipped"
                }
            )
            self.pos += k
            have += k
        if not parts:
            return None
        if len(parts) == 1:
            return parts[0]
        return {
            key: (
                torch.cat([p[key] for p in parts])
                if torch.is_tensor(parts[0][key])
                else [x for p in parts for x in p[key]]
            )
            for key in parts[0]
        }


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def _losses(loss_fn: DetectionLoss, output: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """The loss of one batch: clip labels, emotions and the per-modality head targets."""
    return loss_fn(
        output,
        batch["labels"],
        batch["face_emotions"],
        batch["voice_emotions"],
        image_labels=batch["image_labels"],
        audio_labels=batch["audio_labels"],
    )


class FitLoop:
    """The model, its optimiser and the epochs of one run; the best epoch's model is saved
    to the run's ``models/best`` as it is found."""

    detector: Detector
    model: torch.nn.Module  # the detector, wrapped in DistributedDataParallel across ranks

    def __init__(self, ctx: RunContext, progress: bool) -> None:
        self.ctx = ctx
        self.progress = progress and ctx.dist.is_main
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {}
        self.skipped_total = 0
        self.global_step = 0
        self.start_epoch = 0
        self.last_predictions: list[dict[str, Any]] = []
        self._steps_in_epoch = 0
        self._build()

    # -- set-up -----------------------------------------------------------------------------

    def _build(self) -> None:
        ctx = self.ctx
        c = ctx.config
        checkpoint = None
        if c.resume:
            checkpoint = ctx.out.load_latest_checkpoint()
            saved = json.loads(checkpoint["config_json"])
            changed = [k for k in _ARCHITECTURE_KEYS if saved.get(k) != getattr(c, k)]
            if changed:
                log.warning(
                    "resuming run %s with its own architecture (%s from the checkpoint)",
                    ctx.out.run_id,
                    ", ".join(changed),
                )
            ctx.config = c = c.replace(**{k: saved[k] for k in _ARCHITECTURE_KEYS})
        torch.manual_seed(c.seed)
        kwargs = dict(c.model)
        kwargs.update(fusion=c.fusion, dropout=c.dropout)
        try:
            self.detector = Detector(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"invalid model options {c.model}: {exc}") from None
        self.detector.to(ctx.dist.device)
        self.loss_fn = DetectionLoss(
            emotion_weight=c.emotion_weight,
            consistency_weight=c.consistency_weight,
            margin=c.margin,
        )
        self.optimizer = torch.optim.AdamW(
            self.detector.parameters(), lr=c.lr, weight_decay=c.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=max(c.epochs, 1), eta_min=c.lr * 0.05
        )
        self.guard = MemoryGuard(
            c.batch_size, budget_bytes=c.memory_budget_bytes, min_batch_size=c.min_batch_size
        )
        # Dropout differs per rank; a resumed run continues the RNG stream of its checkpoint.
        torch.manual_seed(c.seed * 1000 + ctx.dist.rank)
        if checkpoint is not None:
            self._restore(checkpoint)
        if ctx.dist.enabled:
            ids = [ctx.dist.device.index] if ctx.dist.device.type == "cuda" else None
            self.model = DistributedDataParallel(
                self.detector, device_ids=ids, find_unused_parameters=True
            )
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
        self.guard.batch_size = max(
            self.ctx.config.min_batch_size,
            min(int(state["batch_size"]), self.ctx.config.batch_size),
        )
        self.ctx.read_previous_logs()
        log.info(
            "resumed run %s from its checkpoint after epoch %d (step %d)",
            self.ctx.out.run_id,
            self.start_epoch,
            self.global_step,
        )

    # -- checkpoints and logs ---------------------------------------------------------------

    def _checkpoint(self, epoch_done: int, name: str, step_in_epoch: int = 0) -> str:
        ctx = self.ctx
        state = {
            "epoch": epoch_done,
            "step_in_epoch": step_in_epoch,
            "global_step": self.global_step,
            "model": self.detector.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng_state(),
            "config_json": json.dumps(ctx.config.to_dict()),
            "history_json": json.dumps(self.history),
            "best_json": json.dumps(self.best),
            "skipped_total": self.skipped_total,
            "batch_size": self.guard.batch_size,
            "run_id": ctx.out.run_id,
        }
        key = ctx.out.save_checkpoint(state, name)
        if ctx.dist.is_main:
            log.info("checkpoint saved: %s", ctx.out_storage.uri(key))
        return key

    def write_logs(self, capture: LogCapture) -> None:
        """The run's log, metrics and memory files as of now."""
        self.ctx.write_logs(capture, self.history, self.guard.to_csv())

    # -- the loop ---------------------------------------------------------------------------

    def run(self, capture: LogCapture, stop: StopFlag) -> None:
        """Train the remaining epochs; on a stop, save ``interrupted.pt`` and re-raise."""
        ctx = self.ctx
        c = ctx.config
        if ctx.dist.is_main:
            log.info(
                "run %s: fusion %s, %d epoch(s), batch size %d, %d rank(s), device %s; "
                "outputs in %s",
                ctx.out.run_id,
                c.fusion,
                c.epochs,
                c.batch_size,
                ctx.dist.world_size,
                ctx.dist.device,
                ctx.out.uri(),
            )
            log.info(self.guard.describe())
        try:
            for epoch in range(self.start_epoch, c.epochs):
                row = self._epoch(epoch, stop)
                self._after_epoch(epoch, row)
                self._checkpoint(epoch + 1, f"epoch_{epoch + 1:04d}.pt")
                self.write_logs(capture)
        except (MemoryBudgetError, TrainingInterrupted) as exc:
            self._checkpoint(len(self.history), "interrupted.pt", self._steps_in_epoch)
            log.error("%s", exc)
            self.write_logs(capture)
            raise

    def _epoch(self, epoch: int, stop: StopFlag) -> dict[str, Any]:
        ctx = self.ctx
        c, dist = ctx.config, ctx.dist
        # Random pairs are drawn again each epoch (more face/voice combinations); the layout
        # module logs how many pairs are true and how many random.
        samples = ctx.train_samples(c.seed + epoch)
        loader = build_split_loader(
            ctx.data,
            ctx.index,
            "train",
            c.batch_size,
            seed=c.seed,
            shuffle=True,
            num_workers=c.num_workers,
            prefetch=c.prefetch,
            rank=dist.rank,
            world_size=dist.world_size,
            s3_reader=c.s3_reader,
            samples=samples,
            face_margin=self.detector.face_margin,
            preprocess=self.detector.preprocess,
        )
        dataset: Any = loader.dataset
        dataset.set_epoch(epoch)
        per_rank = len(dataset)
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
            # disable=None: a bar on a terminal only; a redirected log keeps one event per line
            bar = tqdm(
                total=total_steps,
                desc=f"epoch {epoch + 1}/{c.epochs}",
                unit="step",
                leave=False,
                dynamic_ncols=True,
                disable=None,
            )
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
                assert batch is not None  # every rank has one when the all-reduce says ok
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
                    log.info(
                        "epoch %d step %d: loss %.4f, batch size %d, memory %s",
                        epoch + 1,
                        self._steps_in_epoch,
                        loss,
                        batch_size,
                        format_bytes(self.guard.samples[-1].rss_bytes),
                    )
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - started
        if not D.all_reduce_min(int(problem is None)):
            raise problem or MemoryBudgetError(
                "another rank could not stay under its memory cap; a checkpoint was saved. "
                "Raise --memory-budget or use a smaller model, then --resume latest"
            )
        if not D.all_reduce_min(int(stop.signal_name is None)):
            raise TrainingInterrupted(
                f"training stopped by {stop.signal_name or 'a signal on another rank'} during "
                f"epoch {epoch + 1}; a checkpoint was saved. Continue with --resume "
                f"{ctx.out.run_id}"
            )
        loss_sum, correct_sum, n_sum, no_face = D.all_reduce_sum(list(sums))
        skipped = self._collect_skipped(buffer.skipped, "train")
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        val = self._validate()
        return {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(n_sum, 1),
            "train_accuracy": correct_sum / max(n_sum, 1),
            "lr": lr,
            "batch_size": self.guard.batch_size,
            "seconds": seconds,
            "samples_per_s": n_sum / seconds if seconds > 0 else math.nan,
            "skipped_samples": skipped + val.pop("skipped"),
            "faces_not_detected": int(no_face),
            **val,
        }

    def _step(self, batch: dict[str, Any]) -> tuple[float, int, int]:
        b = _to_device(batch, self.ctx.dist.device)
        output = self.model(b["faces"], b["waves"])
        losses = _losses(self.loss_fn, output, b)
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        if self.ctx.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.detector.parameters(), self.ctx.config.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            correct = int(((output.fake_logit > 0).float() == b["labels"]).sum())
        return float(losses["total"].detach()), correct, len(b["labels"])

    def _collect_skipped(self, skipped: list[Any], split: str) -> int:
        everyone = D.all_gather_objects([(s.key, s.reason) for s in skipped])
        items = [item for part in everyone for item in part]
        if items and self.ctx.dist.is_main:
            for key, reason in items:
                log.warning("skipped a bad %s sample: %s (%s)", split, key, reason)
        self.skipped_total += len(items)
        return len(items)

    # -- validation and the best model ------------------------------------------------------

    @torch.no_grad()
    def _validate(self) -> dict[str, Any]:
        ctx = self.ctx
        c, dist = ctx.config, ctx.dist
        loader = build_split_loader(
            ctx.data,
            ctx.index,
            "validate",
            max(self.guard.batch_size, 1),
            seed=c.seed,
            num_workers=c.num_workers,
            prefetch=c.prefetch,
            rank=dist.rank,
            world_size=dist.world_size,
            s3_reader=c.s3_reader,
            samples=ctx.val_samples,
            equal_shards=False,
            face_margin=self.detector.face_margin,
            preprocess=self.detector.preprocess,
        )
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
            losses = _losses(self.loss_fn, out, b)
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
            return {
                "val_loss": math.nan,
                "val_accuracy": math.nan,
                "val_auc": math.nan,
                "skipped": n_skipped,
            }
        metrics = compute_metrics(y, 1.0 / (1.0 + np.exp(-logits)))
        result = {
            "val_loss": loss_sum / len(rows),
            "val_accuracy": metrics["accuracy"],
            "val_auc": metrics["roc_auc"],
            "skipped": n_skipped,
        }
        for modality in ("image", "audio"):
            scores = [r[f"{modality}_logit"] for r in rows]
            if all(s is not None for s in scores):
                # Each head is scored against what it learns (visual_fake / audio_fake where
                # clips.csv says, the clip's label elsewhere); the row names which it was.
                targets, used = head_targets(modality, y, [r[f"{modality}_label"] for r in rows])
                result[f"val_auc_{modality}"] = roc_auc(targets, np.array(scores))
                result[f"val_auc_{modality}_label"] = used
        for who in ("face", "voice"):
            known = [r for r in rows if r[f"{who}_emotion_true"] >= 0]
            if known:
                result[f"val_{who}_emotion_accuracy"] = float(
                    np.mean([r[f"{who}_emotion_true"] == r[f"{who}_emotion_pred"] for r in known])
                )
        return result

    def _after_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        ctx = self.ctx
        self.history.append(row)
        if ctx.dist.is_main:
            log.info(
                "epoch %d/%d: train loss %.4f acc %.3f | val loss %s acc %s AUC %s | "
                "%.1f samples/s, %d skipped",
                epoch + 1,
                ctx.config.epochs,
                row["train_loss"],
                row["train_accuracy"],
                format_metric(row["val_loss"]),
                format_metric(row["val_accuracy"]),
                format_metric(row["val_auc"]),
                row["samples_per_s"],
                row["skipped_samples"],
            )
            if row["faces_not_detected"]:
                log.warning(
                    "epoch %d: no face detected in %d training images; they were centre-cropped",
                    epoch + 1,
                    row["faces_not_detected"],
                )
        if not self.best or selection_key(row) > selection_key(self.best):
            self.best = dict(row)
            if ctx.dist.is_main:
                self.detector.with_config(metadata=ctx.model_metadata(row))
                ctx.out.save_detector(self.detector)
                ctx.out.write_text(
                    "intermediate",
                    PREDICTIONS_FILE,
                    csv_table(self.last_predictions, PREDICTION_COLUMNS),
                )
                log.info(
                    "best model so far (epoch %d, val AUC %s) saved to %s",
                    epoch + 1,
                    format_metric(row["val_auc"]),
                    ctx.out.uri("models", "best"),
                )


def _prediction_rows(batch: dict[str, Any], out: Any) -> list[dict[str, Any]]:
    """Per-sample validation outputs: fake score, head logits with the heads' own targets (-1:
    the clip's label) and face/voice emotion predictions."""
    face = out.face_emotion_logits.softmax(-1).cpu()
    voice = out.voice_emotion_logits.softmax(-1).cpu()
    logit = out.fake_logit.float().cpu()
    image_logit = out.modality_logits.get("image")
    audio_logit = out.modality_logits.get("audio")
    consistency = out.consistency.float().cpu()
    rows = []
    for i in range(len(batch["labels"])):
        rows.append(
            {
                "image_key": batch["image_keys"][i],
                "audio_key": batch["audio_keys"][i],
                "label": int(batch["labels"][i]),
                "fake_logit": float(logit[i]),
                "fake_probability": float(torch.sigmoid(logit[i])),
                "image_logit": float(image_logit[i]) if image_logit is not None else None,
                "audio_logit": float(audio_logit[i]) if audio_logit is not None else None,
                "image_label": int(batch["image_labels"][i]),
                "audio_label": int(batch["audio_labels"][i]),
                "consistency": float(consistency[i]),
                "face_emotion_true": int(batch["face_emotions"][i]),
                "face_emotion_pred": int(face[i].argmax()),
                "face_emotion_confidence": float(face[i].max()),
                "voice_emotion_true": int(batch["voice_emotions"][i]),
                "voice_emotion_pred": int(voice[i].argmax()),
                "voice_emotion_confidence": float(voice[i].max()),
            }
        )
    return rows
