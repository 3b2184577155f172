"""The end of a training run: calibrate the best model, fit its guard, draw the plots, share it.

After the last epoch the best model (saved by the fit loop) gets a temperature fitted on its
validation logits and an unfamiliar-input guard fitted on its own embeddings of the train
split; both are stored in its ``config.json``. Then the run's plots (01-09) and
``logs/summary.json`` are written and, if asked, the model is pushed to the Hugging Face Hub.
Only the main rank does this work; the others wait at the barrier.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from mmdeepfake.calibration import calibration_summary, fit_temperature
from mmdeepfake.data.layout import clip_id
from mmdeepfake.data.video_samples import Sample, VideoSample, preview_face, preview_voice
from mmdeepfake.domain import embed_split, familiar_shares, fit_detector_guard
from mmdeepfake.errors import MmDeepfakeError
from mmdeepfake.loading import load_run_detector
from mmdeepfake.media.decode import load_audio, load_image
from mmdeepfake.reports import plots
from mmdeepfake.train import distributed as D
from mmdeepfake.train.fit import FitLoop
from mmdeepfake.train.hub import push_run_model
from mmdeepfake.train.memory import format_bytes
from mmdeepfake.train.run_context import RunContext
from mmdeepfake.train.tables import format_metric

log = logging.getLogger("mmdeepfake.train")


def finalise(ctx: RunContext, fit: FitLoop) -> dict[str, Any]:
    """Calibrate, guard, plot, summarise and push the run's best model; returns the
    calibration summary (empty when the validation split has one class)."""
    calibration: dict[str, Any] = {}
    if ctx.dist.is_main:
        calibration = calibrate(ctx)
        guard = fit_guard(ctx)
        if ctx.config.plots:
            write_plots(ctx, fit, calibration)
        summary = {
            "run_id": ctx.out.run_id,
            "best": fit.best,
            "calibration": {k: v for k, v in calibration.items() if k != "abstention"},
            "domain_guard": guard,
            "skipped_samples": fit.skipped_total,
            "peak_rss_bytes": fit.guard.peak_bytes,
            "config": ctx.config.to_dict(),
        }
        ctx.out.write_text("logs", "summary.json", json.dumps(summary, indent=2, default=str))
        log.info(
            "run %s done: best epoch %s, val AUC %s; %d sample(s) skipped; peak memory "
            "%s; outputs in %s",
            ctx.out.run_id,
            fit.best.get("epoch"),
            format_metric(fit.best.get("val_auc")),
            fit.skipped_total,
            format_bytes(fit.guard.peak_bytes),
            ctx.out.uri(),
        )
        if ctx.config.push_to_hub:
            push_run_model(ctx.out_storage, ctx.out.run_id, ctx.config.push_to_hub)
    D.barrier()
    return calibration


def calibrate(ctx: RunContext) -> dict[str, Any]:
    """Fit a temperature on the best model's validation logits; store it in its config."""
    rows = ctx.best_predictions()
    logits = np.array([float(r["fake_logit"]) for r in rows])
    labels = np.array([int(r["label"]) for r in rows])
    if len(set(labels.tolist())) < 2:
        log.warning("validation split has one class only: temperature left at 1.0")
        return {}
    temperature = float(fit_temperature(logits, labels))
    summary = calibration_summary(logits, labels, temperature)
    detector = load_run_detector(ctx.out_storage, ctx.out.run_id)
    metadata = dict(detector.metadata)
    metadata["calibration"] = {k: summary[k] for k in ("temperature", "ece_before", "ece_after")}
    detector.with_config(temperature=temperature, metadata=metadata)
    ctx.out.save_detector(detector)
    log.info(
        "calibration on validation: temperature %.3f, ECE %.4f -> %.4f",
        temperature,
        summary["ece_before"],
        summary["ece_after"],
    )
    return summary


def fit_guard(ctx: RunContext) -> dict[str, Any]:
    """Fit the best model's unfamiliar-input guard (and one-modality head calibration) on
    its own embeddings of the train split, with limits from the validation split; store it
    with the model and return the familiar share of each split."""
    detector = load_run_detector(ctx.out_storage, ctx.out.run_id).to(ctx.dist.device)
    seed = ctx.config.seed
    train = embed_split(detector, ctx.data, ctx.index, "train", seed=seed)
    validation = embed_split(detector, ctx.data, ctx.index, "validate", seed=seed)
    record = fit_detector_guard(
        detector, train, validation, source=f"train split of {ctx.data.uri(ctx.index.prefix)}"
    )
    ctx.out.save_detector(detector)
    shares = {
        "train": familiar_shares(detector, train),
        "validate": familiar_shares(detector, validation),
    }
    log.info(
        "unfamiliar-input guard: limits image %.2f, audio %.2f; familiar share %s",
        record["image"]["limit"],
        record["audio"]["limit"],
        json.dumps(shares),
    )
    return {"limits": {m: record[m]["limit"] for m in ("image", "audio")}, "familiar_share": shares}


def write_plots(ctx: RunContext, fit: FitLoop, calibration: dict[str, Any]) -> None:
    """The run's plots 01-09 from its history, best predictions and memory samples."""
    rows = ctx.best_predictions()
    y = np.array([int(r["label"]) for r in rows])
    logits = np.array([float(r["fake_logit"]) for r in rows])
    real_images, fake_images, real_waves, fake_waves = _sample_media(ctx)
    guard = fit.guard
    figures: dict[str, Callable[[], Any]] = {
        "data_distribution": lambda: plots.plot_data_distribution(ctx.index.counts()),
        "audio_samples": lambda: plots.plot_audio_samples(real_waves, fake_waves),
        "image_samples": lambda: plots.plot_image_samples(real_images, fake_images),
        "loss_curves": lambda: plots.plot_loss_curves(fit.history),
        "accuracy_curves": lambda: plots.plot_accuracy_curves(fit.history),
        "emotion_consistency_heatmap": lambda: plots.plot_emotion_consistency_heatmap(
            [int(r["face_emotion_pred"]) for r in rows],
            [int(r["voice_emotion_pred"]) for r in rows],
            y,
        ),
        "confusion_matrix": lambda: plots.plot_confusion_matrix(y, (logits > 0).astype(int)),
        "memory_usage": lambda: plots.plot_memory_usage(
            guard.samples_for_plot(), guard.cap_bytes, guard.limit_bytes
        ),
    }
    if calibration:
        t = calibration["temperature"]
        figures["reliability_diagram"] = lambda: plots.plot_reliability_diagram(
            1 / (1 + np.exp(-logits)), 1 / (1 + np.exp(-logits / t)), y
        )
    for name, make in figures.items():
        ctx.out.write_bytes("plots", plots.PLOT_FILENAMES[name], plots.figure_to_png(make()))
    log.info("plots written to %s", ctx.out.uri("plots"))


def _sample_media(ctx: RunContext) -> tuple[list, list, list, list]:
    """Validation faces and voices per label for plots 02/03, each from a different clip
    (a video gives a face crop from its middle and its voice).

    A clip has several frames and one recording; consecutive samples share them, so taking
    the first few samples would show one clip several times over.
    """

    def read(label: int, key: str, count: int, load: Any, from_video: Any) -> list:
        found = []
        for sample in distinct_clip_samples(ctx.val_samples, label, key):
            decode = from_video if isinstance(sample, VideoSample) else load
            try:
                found.append(decode(ctx.data.read_bytes(getattr(sample, key))))
            except MmDeepfakeError:
                continue
            if len(found) == count:
                break
        return found

    return (
        read(0, "image_key", 4, load_image, preview_face),
        read(1, "image_key", 4, load_image, preview_face),
        read(0, "audio_key", 3, load_audio, preview_voice),
        read(1, "audio_key", 3, load_audio, preview_voice),
    )


def distinct_clip_samples(
    samples: Iterable[Sample], label: int, key: str = "image_key"
) -> Iterator[Sample]:
    """The samples of ``label`` whose ``key`` file ("image_key" or "audio_key") comes from a clip
    not seen before, in order: one sample per clip."""
    seen: set[str] = set()
    for sample in samples:
        clip = clip_id(getattr(sample, key))
        if sample.label == label and clip not in seen:
            seen.add(clip)
            yield sample
