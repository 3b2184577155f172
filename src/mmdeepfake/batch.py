"""Score many media files with one detector, in this process or a pool of worker processes.

The library behind ``mmdeepfake predict``, usable on its own::

    from mmdeepfake.batch import expand_inputs, score_jobs

    jobs = expand_inputs(["clips/", "s3://bucket/new/"])
    for record in score_jobs(jobs, "starter", workers=2):
        print(record["source"], record.get("label"), record["error"])

Records come back one per job, in job order, as soon as each is ready, so a caller can write
them as they stream and keep every finished one if the run is interrupted. A job that fails
(corrupt, no face, no audio, unreadable, its worker process died) still yields a record, with
``error`` and ``error_type`` set: one bad file never stops a batch.

Beyond one machine, :func:`score_dataset` scores a Ray Dataset on a Ray cluster (the optional
``scale`` extra; see :mod:`mmdeepfake.scale.scoring`). Nothing here imports Ray until it is
called.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmdeepfake.errors import (
    ConfigError,
    MediaNotFoundError,
    MediaUnreadableError,
    MmDeepfakeError,
    WorkerDiedError,
    render,
)

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = [
    "VIDEO_SUFFIXES",
    "Job",
    "Loader",
    "SourceReader",
    "expand_inputs",
    "load_on_device",
    "media_arguments",
    "score_dataset",
    "score_jobs",
]

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi")

# ``loader(model, device, endpoint_url)`` builds the detector each worker scores with. It must
# be a module-level function: worker processes are spawned, so it travels to them by name.
Loader = Callable[[str, str, "str | None"], Any]


def load_on_device(model: str, device: str, endpoint_url: str | None = None) -> Any:
    """The default loader: :func:`mmdeepfake.loading.load_detector` on ``device``."""
    from mmdeepfake.loading import load_detector

    return load_detector(model, endpoint_url=endpoint_url).to(device)


@dataclass(frozen=True)
class Job:
    """One thing to score: a video, a face image with a voice recording, or one alone."""

    source: str
    audio: str | None = None
    alone: str | None = None  # "image" or "audio": the source is scored on its own


def expand_inputs(
    inputs: Sequence[str],
    pairs: Sequence[Sequence[str]] = (),
    endpoint_url: str | None = None,
    images: Sequence[str] = (),
    audios: Sequence[str] = (),
) -> list[Job]:
    """Resolve files, folders and S3 prefixes into jobs, in a stable order.

    Folders and S3 prefixes are searched for videos (:data:`VIDEO_SUFFIXES`), sorted by path;
    ``pairs`` are (face image, voice recording), ``images`` and ``audios`` are scored alone.

    Raises:
        MediaNotFoundError: a folder or prefix holds no video.
        ConfigError: nothing to score at all.
    """
    jobs: list[Job] = []
    for item in inputs:
        if item.startswith("s3://"):
            jobs.extend(Job(uri) for uri in _list_s3_videos(item, endpoint_url))
        elif os.path.isdir(item):
            found = sorted(p for p in Path(item).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise MediaNotFoundError(
                    f"no video files ({', '.join(VIDEO_SUFFIXES)}) under {item}"
                )
            jobs.extend(Job(str(p)) for p in found)
        else:
            jobs.append(Job(item))
    jobs.extend(Job(image, audio) for image, audio in pairs)
    jobs.extend(Job(image, alone="image") for image in images)
    jobs.extend(Job(audio, alone="audio") for audio in audios)
    if not jobs:
        raise ConfigError(
            "nothing to score: give video paths, folders, s3:// prefixes, --pair, "
            "--image-only or --audio-only"
        )
    return jobs


def _list_s3_videos(uri: str, endpoint_url: str | None) -> list[str]:
    from mmdeepfake.data.storage import open_storage

    storage = open_storage(uri, endpoint_url=endpoint_url)
    keys = sorted(k for k in storage.list() if k.lower().endswith(VIDEO_SUFFIXES))
    if not keys:
        raise MediaNotFoundError(f"no video files under {uri}")
    return [storage.uri(k) for k in keys]


# --- reading a job's media --------------------------------------------------------------------


class SourceReader:
    """Reads sources: local paths are passed through; S3 objects are read into memory, never
    to disk, with one client per bucket kept between reads."""

    def __init__(self, endpoint_url: str | None = None) -> None:
        self.endpoint_url = endpoint_url
        self._storages: dict[str, Any] = {}

    def __call__(self, source: str) -> str | bytes:
        if not source.startswith("s3://"):
            return source
        from mmdeepfake.data.storage import open_storage

        bucket, _, key = source[len("s3://") :].partition("/")
        if bucket not in self._storages:
            self._storages[bucket] = open_storage(f"s3://{bucket}", endpoint_url=self.endpoint_url)
        data: bytes = self._storages[bucket].read_bytes(key)
        return data


def media_arguments(job: Job, read: Callable[[str], str | bytes]) -> dict[str, Any]:
    """The media keyword arguments of ``Detector.predict`` (and of the pipeline's ``gather``)
    that score ``job``, its sources read with ``read``.

    Raises:
        OSError: a source cannot be read (see :func:`unreadable`).
    """
    media = read(job.source)
    if job.alone is not None:
        return {job.alone: media}
    if job.audio is None:
        return {"video": media}
    return {"image": media, "audio": read(job.audio)}


def unreadable(job: Job, exc: OSError) -> MediaUnreadableError:
    """The typed error of a job whose media the system would not read (permission denied, a
    path too long, an I/O error): it fails this input only."""
    what = exc.filename or job.source
    return MediaUnreadableError(f"cannot read {what}: {exc.strerror or exc}")


# --- one scoring process (this one, or a spawned worker) ---------------------------------------


@dataclass
class _ProcessState:
    """What a scoring process keeps between jobs: set once by :func:`_init_worker`."""

    detector: Any = None
    advice: Mapping[str, str] = field(default_factory=dict)
    read: SourceReader = field(default_factory=SourceReader)


# Per process: a spawned worker holds its own, filled by its initializer.
_STATE = _ProcessState()


def _init_worker(
    loader: Loader,
    model: str,
    device: str,
    threads: int | None,
    endpoint_url: str | None,
    advice: Mapping[str, str],
) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    _STATE.detector = loader(model, device, endpoint_url)
    _STATE.advice = dict(advice)
    _STATE.read = SourceReader(endpoint_url)


def _score(job_and_options: tuple[Job, dict[str, Any]]) -> dict[str, Any]:
    job, options = job_and_options
    detector = _STATE.detector
    try:
        prediction = detector.predict(**media_arguments(job, _STATE.read), **options)
        return _prediction_record(job, prediction)
    except MmDeepfakeError as exc:
        return _error_record(job, exc, _STATE.advice, detector)
    except OSError as exc:  # permission denied, a path too long, an I/O error: this input only
        return _error_record(job, unreadable(job, exc), _STATE.advice, detector)


def _prediction_record(job: Job, prediction: Any) -> dict[str, Any]:
    """The record of an input that was scored: the prediction's fields, its source, no error."""
    record: dict[str, Any] = prediction.to_dict()
    record["source"] = job.source
    record["error"] = None
    return record


def _error_record(
    job: Job, exc: MmDeepfakeError, advice: Mapping[str, str], detector: Any = None
) -> dict[str, Any]:
    """The record of an input that failed; ``advice`` words the remedy for the caller.

    ``detector`` names the model that refused the input (absent when its worker died)."""
    record: dict[str, Any] = {
        "source": job.source,
        "error": render(exc, advice),
        "error_type": type(exc).__name__,
    }
    if detector is not None:
        record["model"] = asdict(detector.model_info)
    return record


# --- the batch -----------------------------------------------------------------------------------


def score_jobs(
    jobs: Sequence[Job],
    model: str,
    *,
    loader: Loader = load_on_device,
    device: str = "cpu",
    workers: int = 1,
    threads: int | None = None,
    endpoint_url: str | None = None,
    options: Mapping[str, Any] | None = None,
    advice: Mapping[str, str] | None = None,
) -> Generator[dict[str, Any], None, None]:
    """Score every job, in order, yielding one record per job as soon as it is ready.

    Args:
        jobs: what to score, from :func:`expand_inputs` or built by hand.
        model: the model to score with: any spelling :func:`mmdeepfake.load_detector` reads
            (``starter``, a folder, ``hf-hub:ORG/NAME``, ``s3://...``).
        loader: ``loader(model, device, endpoint_url)`` returns the detector; a module-level
            function. The default loads with :func:`mmdeepfake.load_detector`.
        device: torch device of the detector.
        workers: 1 scores here; more spawns that many worker processes. A worker that dies
            (out of memory, killed) answers its job with a ``WorkerDiedError`` record and is
            replaced; the batch goes on.
        threads: torch threads per worker (default: CPU cores / workers in a pool, torch's
            own choice in this process).
        endpoint_url: S3 endpoint for ``s3://`` sources (default: AWS S3).
        options: keyword arguments of ``Detector.predict`` (threshold, num_frames, ...).
        advice: how a failed record words the remedies errors name by hint (see
            :func:`mmdeepfake.errors.render`); none by default.

    Close the iterator (``contextlib.closing``) to stop a pool early, for example on Ctrl-C.
    """
    work = [(job, dict(options or {})) for job in jobs]
    advice = dict(advice or {})
    if workers <= 1:
        _init_worker(loader, model, device, threads, endpoint_url, advice)
        yield from map(_score, work)
        return
    import functools
    import multiprocessing

    from mmdeepfake.worker_pool import WorkerPool

    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    initargs = (loader, model, device, threads, endpoint_url, advice)
    context = multiprocessing.get_context("spawn")
    on_death = functools.partial(_worker_died, advice=advice)
    with WorkerPool(workers, _init_worker, initargs, context) as pool:
        yield from pool.imap(_score, work, on_death=on_death)


def _worker_died(
    job_and_options: tuple[Job, dict[str, Any]], exitcode: int | None, advice: Mapping[str, str]
) -> dict[str, Any]:
    """The record of an input whose worker process ended while scoring it."""
    if exitcode is not None and exitcode < 0:
        how = f"was killed by signal {-exitcode}"
    else:
        how = f"exited with status {exitcode}"
    died = WorkerDiedError(
        f"the worker process scoring this input {how} (for example, out of memory); the run "
        "went on with the other inputs"
    )
    return _error_record(job_and_options[0], died, advice)


def score_dataset(
    ds: Dataset,
    model: str = "starter",
    **settings: Any,
) -> Dataset:
    """Score a Ray Dataset of media on a Ray cluster: a Ray Dataset of records, one per row.

    The rows name their media in a ``source`` column (a local path on the workers, or an
    ``s3://`` URI), or carry them in a ``bytes`` column beside a ``path`` or ``source`` (as
    ``ray.data.read_binary_files(..., include_paths=True)`` gives); optional ``audio`` (a
    voice recording scored with the face image in ``source``) and ``alone`` (``"image"`` or
    ``"audio"``: the source scored on its own) columns make the other kinds of job. The
    records have the columns of :data:`mmdeepfake.scale.scoring.RECORD_SCHEMA`: ``source``,
    ``label``, ``fake_probability``, ``error``, ``error_type``, and ``record``, the JSON text
    of the record the local engine writes.

    ``settings`` are those of :func:`mmdeepfake.scale.scoring.score_dataset` (actors, GPUs per
    actor, endpoint URL, predict options). Needs ``pip install "mmdeepfake[scale]"``.

    Raises:
        ConfigError: Ray is not installed, or the dataset lacks the columns named above.
    """
    from mmdeepfake.scale.cluster import require_ray

    require_ray()
    from mmdeepfake.scale import scoring

    return scoring.score_dataset(ds, model, **settings)
