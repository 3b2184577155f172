"""Dataset preparation on Ray Data: ``mmdeepfake prepare ... --engine ray``.

The driver (the machine running the command) lists the dataset and gives every clip its split
exactly as the local engine does (:func:`mmdeepfake.prepare.engine.prepare_dataset`); only the
work on each clip moves to Ray. :class:`RayRunner` puts the clips still to do into a Ray
Dataset, one clip per block, and maps them through :class:`ClipPreparer` in CPU tasks of one
core each: a task reads a clip's video into memory (from a folder or S3), decodes it, crops the
faces and writes the frames and the voice straight to the destination with the same
:func:`~mmdeepfake.prepare.extract.prepare_clip` the local engine calls, so the outputs are
the same. Outcomes stream back to the driver as clips finish, and the driver keeps the resume
manifest and the summary as the local engine does.

Faults are Ray's to handle: a clip whose worker process dies (a node lost, the out-of-memory
killer) is tried again in another, up to ``max_retries`` times. A clip that still fails is
dropped by Ray Data (``max_errored_blocks``) instead of failing the run; the driver counts it
as ``worker died`` and leaves it out of the manifest, so the next run tries it again, as the
local engine's worker pool does.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mmdeepfake.config import PreprocessConfig
from mmdeepfake.data.storage import LocalStorage, Storage
from mmdeepfake.errors import ConfigError
from mmdeepfake.prepare.clips import Clip
from mmdeepfake.prepare.engine import WORKER_DIED
from mmdeepfake.prepare.extract import ClipOutcome, prepare_clip
from mmdeepfake.scale.cluster import connect

__all__ = ["CPUS_PER_WORKER", "ClipPreparer", "RayRunner"]

log = logging.getLogger(__name__)

#: Cores each preparing actor holds. Decoding and the face cascade are mostly single-threaded
#: (docs/performance.md), so one clip per core is the most clips at once.
CPUS_PER_WORKER = 1


class ClipPreparer:
    """Prepares one clip per call, in a Ray task.

    Rows in: ``{"clip": <the Clip as JSON>}``; rows out: the fields of a
    :class:`~mmdeepfake.prepare.extract.ClipOutcome`. The face detector is built on a worker
    process's first clip and kept there (:meth:`~mmdeepfake.media.faces.FaceDetector.shared`);
    Ray reuses its worker processes, so each loads it once. Tasks rather than an actor pool:
    a task gives its core back when it ends, while a pool's actors outlive the run until
    garbage collection frees them, and a second run in the same process could wait for them.
    """

    def __init__(self, source: Storage, dest: Storage, frames_per_clip: int) -> None:
        self.source, self.dest = source, dest
        self.frames_per_clip = frames_per_clip

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import torch

        from mmdeepfake.media.faces import FaceDetector

        torch.set_num_threads(CPUS_PER_WORKER)  # the cores Ray gave this task, no more
        preprocess = PreprocessConfig()
        outcome = prepare_clip(
            Clip(**json.loads(row["clip"])),
            self.source,
            self.dest,
            frames_per_clip=self.frames_per_clip,
            detector=FaceDetector.shared(**preprocess.face_detector_kwargs()),
            sample_rate=preprocess.sample_rate,
        )
        return asdict(outcome)


@dataclass(frozen=True)
class RayRunner:
    """Runs clips on Ray: pass as ``runner=`` to :func:`~mmdeepfake.prepare.engine.prepare_dataset`.

    Attributes:
        address: the cluster to join (``auto``, ``ray://HOST:10001``); None starts a local Ray
            instance on this machine.
        workers: clips prepared at once, one core each. Without ``address`` it is also the
            local instance's core count; default: every core of this machine, or of the
            cluster as it stands when the run starts.
        max_retries: how often a clip whose worker process died is tried again before the
            run moves on without it (the next run tries it again).
    """

    address: str | None = None
    workers: int | None = None
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError("the Ray engine needs at least 1 worker")
        if self.max_retries < 0:
            raise ConfigError("max_retries must be 0 or more")

    def __call__(
        self, clips: Sequence[Clip], source: Storage, dest: Storage, frames_per_clip: int
    ) -> Iterator[ClipOutcome]:
        """Prepare ``clips`` on Ray: one outcome per clip, in the order they finish."""
        self._check_reachable(source, dest)
        ray = connect(self.address, num_cpus=self.workers)
        workers = self.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        by_id = {clip.clip_id: clip for clip in clips}
        with _data_context(ray, max_errored_blocks=-1, enable_progress_bars=False):
            rows = [{"clip": json.dumps(asdict(clip))} for clip in clips]
            dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
                ClipPreparer(source, dest, frames_per_clip),
                compute=ray.data.TaskPoolStrategy(size=min(workers, len(rows))),
                num_cpus=CPUS_PER_WORKER,
                max_retries=self.max_retries,
            )
            for row in dataset.iter_rows():
                outcome = _outcome(row)
                by_id.pop(outcome.clip_id, None)
                yield outcome
        for clip in by_id.values():  # dropped after its retries: Ray logged why
            tries = self.max_retries + 1
            message = f"the Ray worker preparing this clip died, {tries} time(s): see Ray's log"
            yield ClipOutcome(clip.clip_id, WORKER_DIED, message=message)

    def _check_reachable(self, source: Storage, dest: Storage) -> None:
        """Ray Client runs the work on the cluster, which cannot see this machine's folders."""
        if self.address is None or not self.address.startswith("ray://"):
            return
        for role, storage in (("source", source), ("destination", dest)):
            if isinstance(storage, LocalStorage):
                raise ConfigError(
                    f"the {role} {storage.uri()} is a folder of this machine, which the "
                    f"cluster at {self.address} cannot see: use s3:// for both"
                )


def _outcome(row: dict[str, Any]) -> ClipOutcome:
    return ClipOutcome(
        clip_id=str(row["clip_id"]),
        outcome=str(row["outcome"]),
        frames=int(row["frames"]),
        message=str(row["message"]),
    )


@contextlib.contextmanager
def _data_context(ray: Any, **settings: Any) -> Iterator[None]:
    """Ray Data settings for the datasets made inside the block, restored afterwards (a
    dataset keeps a copy of the settings it was made with)."""
    context = ray.data.DataContext.get_current()
    before = {name: getattr(context, name) for name in settings}
    for name, value in settings.items():
        setattr(context, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(context, name, value)
