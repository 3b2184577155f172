"""Prepare a dataset: list its clips, split them, and write each into the training layout.

:func:`prepare_dataset` is what ``mmdeepfake prepare`` runs. The dataset's adapter lists its
clips (:mod:`mmdeepfake.prepare.clips`), :func:`~mmdeepfake.prepare.splits.assign_splits`
gives every clip a split (keeping identities apart and official splits as they are), and each
clip is decoded and written by :func:`~mmdeepfake.prepare.extract.prepare_clip`, here or over
``workers`` spawned processes (:class:`~mmdeepfake.worker_pool.WorkerPool`: a worker that
dies costs only the clip it held), or by another ``runner`` such as Ray's
(:class:`mmdeepfake.scale.preparing.RayRunner`). Finished clips go into the destination's
manifest (:mod:`mmdeepfake.prepare.manifest`), so a second run skips them.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmdeepfake.config import PreprocessConfig
from mmdeepfake.data.storage import Storage, open_storage
from mmdeepfake.errors import ConfigError, DatasetError
from mmdeepfake.prepare.clips import Clip, read_dataset
from mmdeepfake.prepare.extract import WRITTEN, ClipOutcome, prepare_clip
from mmdeepfake.prepare.manifest import Manifest

__all__ = ["ClipRunner", "PrepareSummary", "prepare_clips", "prepare_dataset"]

log = logging.getLogger(__name__)

WORKER_DIED = "worker died"
#: What prepares the clips still to do: ``runner(clips, source, dest, frames_per_clip)`` yields
#: one outcome per clip, in any order (:data:`WORKER_DIED` for one it could not finish, which
#: stays out of the manifest). Without one, the local engine runs them (``workers``).
ClipRunner = Callable[[Sequence[Clip], Storage, Storage, int], Iterable[ClipOutcome]]
#: Entries the format's reader left out that the summary names (all are logged).
LEFT_OUT_SHOWN = 5


@dataclass
class PrepareSummary:
    """What a preparation did: clips written, skipped by reason, found already done, and the
    dataset entries its format's reader left out (``left_out``: one line each, why)."""

    clips: int = 0
    written: int = 0
    frames: int = 0
    already_done: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    by_split: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    destination: str = ""
    left_out: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """A few lines for the terminal."""
        first = f"prepared {self.written} clips ({self.frames} face frames) in {self.seconds:.1f} s"
        lines = [f"{first} into {self.destination}"]
        if self.by_split:
            lines.append(
                "written by split: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.by_split.items()))
            )
        if self.already_done:
            lines.append(f"already done by an earlier run: {self.already_done} clips")
        if self.skipped:
            reasons = ", ".join(f"{why} {count}" for why, count in sorted(self.skipped.items()))
            lines.append(f"skipped {sum(self.skipped.values())} clips: {reasons}")
        if self.left_out:
            lines.append(f"left out by the dataset's metadata: {len(self.left_out)} entries")
            lines += [f"  {line}" for line in self.left_out[:LEFT_OUT_SHOWN]]
            if len(self.left_out) > LEFT_OUT_SHOWN:
                lines.append(f"  ... and {len(self.left_out) - LEFT_OUT_SHOWN} more (see the log)")
        return "\n".join(lines)


def prepare_dataset(
    src: str,
    dest: str,
    format: str,
    *,
    endpoint_url: str | None = None,
    workers: int = 1,
    frames_per_clip: int = 8,
    max_clips: int | None = None,
    seed: int = 0,
    splits: Sequence[float] = (0.8, 0.1, 0.1),
    progress: bool = True,
    runner: ClipRunner | None = None,
) -> PrepareSummary:
    """Write the dataset at ``src`` (a folder or ``s3://``) in ``format`` as the training
    layout at ``dest``.

    ``max_clips`` prepares a seeded random subset, chosen after the splits are assigned, so
    every subset keeps the full dataset's split of each clip. ``runner`` prepares the clips
    elsewhere (e.g. :class:`mmdeepfake.scale.preparing.RayRunner`) instead of in ``workers``
    local processes; listing, splits, manifest and summary stay here.

    Raises:
        ConfigError: an unknown format, bad settings, or a destination prepared differently.
        DatasetError: the source does not hold a dataset of that format.
    """
    started = time.perf_counter()
    if frames_per_clip < 1 or workers < 1 or (max_clips is not None and max_clips < 1):
        raise ConfigError("frames_per_clip, workers and max_clips must be at least 1")
    if runner is not None and workers != 1:
        raise ConfigError("workers sizes the local engine; give the runner its own workers")
    from mmdeepfake.prepare.splits import assign_splits

    source = open_storage(src, endpoint_url=endpoint_url)
    listing = read_dataset(format, source)
    for line in listing.skipped:
        log.warning("left out: %s", line)
    clips = assign_splits(listing.clips, fractions=tuple(splits), seed=seed)
    if not clips:
        raise DatasetError(f"no clips found in {source.uri()} for the format {format!r}")
    if max_clips is not None and max_clips < len(clips):
        clips = random.Random(seed).sample(sorted(clips, key=lambda c: c.clip_id), max_clips)
    settings = {
        "format": format,
        "frames_per_clip": frames_per_clip,
        "seed": seed,
        "splits": list(splits),
        "preprocess": PreprocessConfig().to_dict(),
    }
    target = open_storage(dest, endpoint_url=endpoint_url)
    target.ensure_bucket()
    summary = prepare_clips(
        clips,
        source,
        target,
        settings=settings,
        workers=workers,
        frames_per_clip=frames_per_clip,
        progress=progress,
        runner=runner,
    )
    summary.left_out = list(listing.skipped)
    summary.seconds = time.perf_counter() - started
    return summary


def prepare_clips(
    clips: Sequence[Clip],
    source: Storage,
    dest: Storage,
    *,
    settings: dict[str, Any],
    workers: int = 1,
    frames_per_clip: int = 8,
    progress: bool = True,
    runner: ClipRunner | None = None,
) -> PrepareSummary:
    """Write clips that already carry their split (``clip.split``) into the layout at
    ``dest``, skipping those the destination's manifest lists as finished; ``runner`` as in
    :func:`prepare_dataset`."""
    from tqdm import tqdm

    missing = [clip.clip_id for clip in clips if clip.split is None]
    if missing:
        raise DatasetError(f"{len(missing)} clips have no split, e.g. {missing[0]}")
    manifest = Manifest(dest, settings)
    summary = PrepareSummary(clips=len(clips), destination=dest.uri())
    todo = [clip for clip in clips if not manifest.done(clip.clip_id)]
    summary.already_done = len(clips) - len(todo)
    by_id = {clip.clip_id: clip for clip in todo}
    bar = tqdm(total=len(todo), desc="preparing", unit="clip", disable=None if progress else True)
    if not todo:  # a finished run re-run: not even a face detector to load
        outcomes: Iterable[ClipOutcome] = ()
    elif runner is not None:
        outcomes = runner(todo, source, dest, frames_per_clip)
    else:
        outcomes = _outcomes(todo, source, dest, workers, frames_per_clip)
    try:
        for outcome in outcomes:
            clip = by_id[outcome.clip_id]
            if outcome.outcome != WORKER_DIED:  # not the clip's fault: tried again on resume
                manifest.add(clip, outcome)
            if outcome.outcome == WRITTEN:
                summary.written += 1
                summary.frames += outcome.frames
                summary.by_split[str(clip.split)] += 1
            else:
                summary.skipped[outcome.outcome] += 1
                log.warning("skipped %s (%s): %s", clip.source, outcome.outcome, outcome.message)
            bar.update()
    finally:
        bar.close()
        manifest.save()
    return summary


# --- the work, here or in worker processes -------------------------------------------------------


@dataclass
class _ProcessState:
    """What a preparing process keeps between clips: set once by :func:`_init_worker`."""

    source: Storage | None = None
    dest: Storage | None = None
    detector: Any = None
    frames_per_clip: int = 8
    sample_rate: int = 16000


_STATE = _ProcessState()


def _init_worker(source: Storage, dest: Storage, frames_per_clip: int, threads: int | None) -> None:
    import torch

    from mmdeepfake.media.faces import FaceDetector

    if threads:
        torch.set_num_threads(threads)
    preprocess = PreprocessConfig()
    _STATE.source, _STATE.dest = source, dest
    _STATE.detector = FaceDetector.shared(**preprocess.face_detector_kwargs())
    _STATE.frames_per_clip = frames_per_clip
    _STATE.sample_rate = preprocess.sample_rate


def _prepare(clip: Clip) -> ClipOutcome:
    assert _STATE.source is not None and _STATE.dest is not None, "worker not initialised"
    return prepare_clip(
        clip,
        _STATE.source,
        _STATE.dest,
        frames_per_clip=_STATE.frames_per_clip,
        detector=_STATE.detector,
        sample_rate=_STATE.sample_rate,
    )


def _worker_died(clip: Clip, exitcode: int | None) -> ClipOutcome:
    message = f"the worker process preparing this clip ended (exit code {exitcode})"
    return ClipOutcome(clip.clip_id, WORKER_DIED, message=message)


def _outcomes(
    clips: list[Clip], source: Storage, dest: Storage, workers: int, frames_per_clip: int
) -> Iterator[ClipOutcome]:
    if workers <= 1 or len(clips) <= 1:
        _init_worker(source, dest, frames_per_clip, None)
        yield from map(_prepare, clips)
        return
    import multiprocessing

    from mmdeepfake.worker_pool import WorkerPool

    threads = max(1, (os.cpu_count() or 1) // workers)
    initargs = (source, dest, frames_per_clip, threads)
    context = multiprocessing.get_context("spawn")
    with WorkerPool(workers, _init_worker, initargs, context) as pool:
        yield from pool.imap(_prepare, clips, on_death=_worker_died)
