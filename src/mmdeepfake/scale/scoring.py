"""Batch scoring on Ray Data: decoding on CPU workers, the network in an actor pool.

A prediction is two kinds of work (see :meth:`mmdeepfake.pipeline.DetectionPipeline.gather`):
decoding the media, finding the faces and cutting the voice, which needs CPU cores and no
model; then the network, which needs the model's weights in memory (and a GPU when there is
one). Ray Data runs them as two stages of one streaming dataset: a pool of CPU workers
(:class:`GatherMedia`, each with its own face detector) gathers the media of each row, and a
pool of ``actors`` model actors (:class:`ScoreGathered`, each holding the model) scores them.
Rows stream through both, so memory does not grow with the number of inputs.

Every row gives one record, with the fields of the local engine's (:mod:`mmdeepfake.batch`):
an input that fails (unreadable, corrupt, no face and no voice) gives an ``error`` record with
its ``error_type``. A model actor that dies (killed, out of memory) is restarted by Ray and the
rows it held are retried on it (``max_restarts``, ``max_task_retries``).
"""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
from ray.data import ActorPoolStrategy, Dataset

from mmdeepfake.batch import (
    Job,
    Loader,
    SourceReader,
    _error_record,
    _prediction_record,
    load_on_device,
    media_arguments,
    unreadable,
)
from mmdeepfake.errors import ConfigError, MmDeepfakeError
from mmdeepfake.pipeline import MediaGatherer

__all__ = [
    "GATHER_OPTIONS",
    "RECORD_SCHEMA",
    "SCORE_OPTIONS",
    "GatherMedia",
    "ScoreGathered",
    "jobs_dataset",
    "records_table",
    "score_dataset",
]

# ``Detector.predict`` options, by the stage that uses them.
GATHER_OPTIONS = ("num_frames", "detect_faces", "require")
SCORE_OPTIONS = ("threshold", "abstain_below", "on_unfamiliar")

#: The columns of a scored dataset: a summary to filter on, and the whole record as JSON text
#: (its nested fields differ between a prediction and an error, which one table schema cannot
#: hold without mostly empty columns).
RECORD_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("label", pa.string()),
        ("fake_probability", pa.float64()),
        ("error", pa.string()),
        ("error_type", pa.string()),
        ("record", pa.string()),
    ]
)

# An actor that dies on the same rows this many times more gives up on them (the run fails
# there unless the caller allows errored blocks; see ``mmdeepfake.scale.predict``).
MAX_TASK_RETRIES = 3


def jobs_dataset(jobs: list[Job]) -> Dataset:
    """A dataset of jobs (from :func:`mmdeepfake.batch.expand_inputs`), one row each."""
    import ray.data

    rows = [{"source": j.source, "audio": j.audio, "alone": j.alone} for j in jobs]
    # One row per block: each input is scheduled on its own, and a retried block is one input.
    return ray.data.from_items(rows, override_num_blocks=len(rows))


def score_dataset(
    ds: Dataset,
    model: str = "starter",
    *,
    actors: int = 1,
    gpus_per_actor: float = 0.0,
    cpus_per_actor: float = 1.0,
    gather_workers: int = 1,
    cpus_per_gather_worker: float = 1.0,
    endpoint_url: str | None = None,
    options: Mapping[str, Any] | None = None,
    advice: Mapping[str, str] | None = None,
    loader: Loader = load_on_device,
    max_task_retries: int = MAX_TASK_RETRIES,
) -> Dataset:
    """Score the media named by ``ds``'s rows; a dataset of records (:data:`RECORD_SCHEMA`).

    Args:
        ds: rows with ``source`` (a path the workers can read, or an ``s3://`` URI) or
            ``path`` and ``bytes`` (the media themselves, as ``read_binary_files`` gives), and
            optionally ``audio`` and ``alone`` (see :class:`mmdeepfake.batch.Job`).
        model: what :func:`mmdeepfake.load_detector` reads, on every worker.
        actors: model actors, each holding the model.
        gpus_per_actor: GPUs each model actor reserves (0: the actors score on CPU; 0.5: two
            actors share a GPU).
        cpus_per_actor: CPU cores each model actor reserves (its torch threads).
        gather_workers: CPU workers decoding and finding faces, each with ``cpus_per_gather
            _worker`` cores.
        endpoint_url: S3 endpoint of ``s3://`` sources and of an ``s3://`` model.
        options: ``Detector.predict`` keyword arguments (threshold, num_frames, require, ...).
        advice: how error records word remedies (see :func:`mmdeepfake.errors.render`).
        loader: ``loader(model, device, endpoint_url)`` builds each actor's detector; a
            module-level function.
        max_task_retries: how often rows whose actor died are retried on its replacement.

    Raises:
        ConfigError: the dataset lacks a ``source`` or ``path`` column, an option is unknown or
            out of range, or the model cannot be loaded.
    """
    options = dict(options or {})
    unknown = sorted(set(options) - set(GATHER_OPTIONS) - set(SCORE_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown predict options: {', '.join(unknown)}")
    columns = set(ds.columns() or [])
    if not columns & {"source", "path"}:
        raise ConfigError(
            "score_dataset needs a 'source' (or 'path') column naming each row's media; "
            f"the dataset has {sorted(columns)}"
        )
    # Loaded once here: a bad model or option fails now, with its own error, not once per actor.
    pipeline = loader(model, "cpu", endpoint_url).pipeline
    score_options = {k: v for k, v in options.items() if k in SCORE_OPTIONS}
    pipeline.check_options(
        score_options.get("threshold"),
        score_options.get("abstain_below"),
        str(score_options.get("on_unfamiliar", "uncertain")),
    )
    gathered = ds.map_batches(
        GatherMedia,
        fn_constructor_kwargs={
            "gatherer": pipeline.gatherer("cpu"),
            "options": {k: v for k, v in options.items() if k in GATHER_OPTIONS},
            "endpoint_url": endpoint_url,
        },
        batch_size=1,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=gather_workers),
        num_cpus=cpus_per_gather_worker,
    )
    with warnings.catch_warnings():
        # Ray 2.60 takes the actor options below only among its ``ray_remote_args`` (which it
        # announces will be renamed); no named parameter sets them yet.
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        return _score_stage(
            gathered,
            loader=loader,
            model=model,
            endpoint_url=endpoint_url,
            options=score_options,
            advice=advice,
            actors=actors,
            gpus_per_actor=gpus_per_actor,
            cpus_per_actor=cpus_per_actor,
            max_task_retries=max_task_retries,
        )


def _score_stage(
    gathered: Dataset,
    *,
    loader: Loader,
    model: str,
    endpoint_url: str | None,
    options: Mapping[str, Any],
    advice: Mapping[str, str] | None,
    actors: int,
    gpus_per_actor: float,
    cpus_per_actor: float,
    max_task_retries: int,
) -> Dataset:
    """The model stage of :func:`score_dataset`: ``actors`` actors holding the model."""
    return gathered.map_batches(
        ScoreGathered,
        fn_constructor_kwargs={
            "loader": loader,
            "model": model,
            "device": "cuda" if gpus_per_actor > 0 else "cpu",
            "endpoint_url": endpoint_url,
            "options": dict(options),
            "advice": dict(advice or {}),
        },
        batch_size=1,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
        # Ray's actor fault tolerance: a dead actor is replaced (its constructor loads the
        # model again) and the rows it was scoring are sent to the replacement.
        max_restarts=-1,
        max_task_retries=max_task_retries,
    )


# The schema of the rows between the two stages.
_GATHERED_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("audio", pa.string()),
        ("alone", pa.string()),
        ("gathered", pa.binary()),
    ]
)


def _cell(batch: pa.Table, column: str, i: int) -> Any:
    """Row ``i`` of ``column`` as a Python value, or None when the dataset has no such column
    (batches are Arrow tables: a missing value stays None, where numpy would make it NaN)."""
    if column not in batch.column_names:
        return None
    return batch.column(column)[i].as_py()


def _job(batch: pa.Table, i: int) -> Job:
    source = _cell(batch, "source", i)
    if source is None:
        source = _cell(batch, "path", i)
    return Job(str(source), _cell(batch, "audio", i), _cell(batch, "alone", i))


class GatherMedia:
    """The CPU stage: each row's media read, decoded, their faces found and voice cut.

    A callable class, so Ray Data keeps one per worker and the face detector is built once per
    worker, not once per row. Each output row carries the pickled
    :class:`~mmdeepfake.pipeline.GatheredMedia`, or the typed error of an input that cannot be
    scored, for the model stage to turn into its record.
    """

    def __init__(
        self,
        gatherer: MediaGatherer,
        options: Mapping[str, Any],
        endpoint_url: str | None,
    ) -> None:
        self.gatherer = gatherer
        self.options = dict(options)
        self.read = SourceReader(endpoint_url)
        self.gatherer.face_detector()  # built now, before the first row waits for it

    def __call__(self, batch: pa.Table) -> pa.Table:
        jobs = [_job(batch, i) for i in range(batch.num_rows)]
        payloads = [pickle.dumps(self._gather(job, batch, i)) for i, job in enumerate(jobs)]
        columns = {
            "source": [j.source for j in jobs],
            "audio": [j.audio for j in jobs],
            "alone": [j.alone for j in jobs],
            "gathered": payloads,
        }
        return pa.table(columns, schema=_GATHERED_SCHEMA)

    def _gather(self, job: Job, batch: pa.Table, i: int) -> Any:
        content = _cell(batch, "bytes", i)

        def read(source: str) -> str | bytes:
            if content is not None and source == job.source:
                return bytes(content)  # the row carries the media itself
            return self.read(source)

        try:
            return self.gatherer.gather(**media_arguments(job, read), **self.options)
        except MmDeepfakeError as exc:
            return exc
        except OSError as exc:
            return unreadable(job, exc)


class ScoreGathered:
    """The model stage: an actor holding the model scores what :class:`GatherMedia` gathered.

    Its constructor loads the model (again, after Ray restarts a dead actor); each row becomes
    one record with the columns of :data:`RECORD_SCHEMA`.
    """

    def __init__(
        self,
        loader: Loader,
        model: str,
        device: str,
        endpoint_url: str | None,
        options: Mapping[str, Any],
        advice: Mapping[str, str],
    ) -> None:
        self.detector = loader(model, device, endpoint_url)
        self.pipeline = self.detector.pipeline
        self.options = dict(options)
        self.advice = dict(advice)

    def __call__(self, batch: pa.Table) -> pa.Table:
        records = [
            self._score(_job(batch, i), _cell(batch, "gathered", i)) for i in range(batch.num_rows)
        ]
        return records_table(records)

    def _score(self, job: Job, payload: bytes) -> dict[str, Any]:
        gathered = pickle.loads(payload)
        if isinstance(gathered, MmDeepfakeError):
            return _error_record(job, gathered, self.advice, self.detector)
        try:
            prediction = self.pipeline.score_gathered(gathered, **self.options)
        except MmDeepfakeError as exc:
            return _error_record(job, exc, self.advice, self.detector)
        return _prediction_record(job, prediction)


def records_table(records: list[dict[str, Any]]) -> pa.Table:
    """Records as a table of :data:`RECORD_SCHEMA`: the summary columns and the JSON text."""
    columns = {
        "source": [r["source"] for r in records],
        "label": [r.get("label") for r in records],
        "fake_probability": [r.get("fake_probability") for r in records],
        "error": [r["error"] for r in records],
        "error_type": [r.get("error_type") for r in records],
        "record": [json.dumps(r) for r in records],
    }
    return pa.table(columns, schema=RECORD_SCHEMA)
