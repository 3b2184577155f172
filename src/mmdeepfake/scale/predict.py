"""``mmdeepfake predict --engine ray``: score jobs on a Ray cluster and write their records.

The driver lists the jobs (:func:`mmdeepfake.batch.expand_inputs`), joins the cluster (or starts
a local Ray instance), builds the scoring dataset (:func:`mmdeepfake.scale.scoring
.score_dataset`) and writes the records as they stream back (:class:`RecordWriter`), one per
job, in the order they finish. Rows whose model actor died more often than Ray retries them are
left out by Ray; the driver gives each of them a ``WorkerDiedError`` record, so the output
always holds one record per input.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import pyarrow as pa

from mmdeepfake.batch import Job, Loader, _error_record, load_on_device
from mmdeepfake.errors import ConfigError, WorkerDiedError
from mmdeepfake.scale.cluster import connect
from mmdeepfake.scale.output import RecordWriter
from mmdeepfake.scale.scoring import jobs_dataset, score_dataset

# CPU cores a model actor reserves: its torch threads (Ray sets OMP_NUM_THREADS from it).
CPUS_PER_ACTOR = 1.0


@dataclass(frozen=True)
class Summary:
    """What a run wrote: where, how many records, and the failed ones."""

    uri: str
    records: int
    failed: list[dict[str, Any]]


def score_to(
    jobs: Sequence[Job],
    out: str,
    *,
    model: str = "starter",
    fmt: str = "jsonl",
    address: str | None = None,
    actors: int = 1,
    gpus_per_actor: float = 0.0,
    endpoint_url: str | None = None,
    options: Mapping[str, Any] | None = None,
    advice: Mapping[str, str] | None = None,
    loader: Loader = load_on_device,
    num_cpus: int | None = None,
    progress: Callable[[int], None] = lambda done: None,
) -> Summary:
    """Score ``jobs`` on Ray and write one record per job to ``out`` (a folder or s3://).

    ``address`` is a running cluster (``auto``, ``ray://HOST:10001``); None starts a local
    Ray instance with ``num_cpus`` cores (default: all). ``progress`` is called with the
    number of records written so far. The other arguments are those of
    :func:`mmdeepfake.scale.scoring.score_dataset`.

    Raises:
        ConfigError: Ray is missing, the cluster does not answer, the output cannot be
            written, or the model or an option is bad.
    """
    writer = RecordWriter.open(out, fmt, endpoint_url)
    try:
        ray = connect(address, num_cpus=num_cpus)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller shows one bar over the inputs
        # A block that fails for good (its actor died on every retry) is left out rather
        # than ending the run; its inputs get WorkerDiedError records below.
        context.max_errored_blocks = -1
        cores = _check_resources(ray.cluster_resources(), address, actors, gpus_per_actor)
        records = score_dataset(
            jobs_dataset(list(jobs)),
            model,
            actors=actors,
            gpus_per_actor=gpus_per_actor,
            cpus_per_actor=CPUS_PER_ACTOR,
            gather_workers=max(1, int(cores - actors * CPUS_PER_ACTOR)),
            endpoint_url=endpoint_url,
            options=options,
            advice=advice,
            loader=loader,
        )
        missing = Counter(job.source for job in jobs)
        failed: list[dict[str, Any]] = []
        for batch in records.iter_batches(batch_size=None, batch_format="pyarrow"):
            table = cast(pa.Table, batch)
            writer.write(table)
            for row in table.select(["source", "error", "record"]).to_pylist():
                missing[row["source"]] -= 1
                if row["error"] is not None:
                    failed.append(json.loads(row["record"]))
            progress(writer.written)
        for job in jobs:
            if missing[job.source] > 0:
                missing[job.source] -= 1
                record = _error_record(job, _died(), advice or {})
                writer.write_record(record)
                failed.append(record)
                progress(writer.written)
    except BaseException:
        if writer.written:
            writer.close()  # the finished records stay
        else:
            writer.discard()
        raise
    writer.close()
    return Summary(writer.uri, writer.written, failed)


def _check_resources(
    resources: Mapping[str, float], address: str | None, actors: int, gpus_per_actor: float
) -> float:
    """The cluster's CPU cores, after refusing what it cannot run (Ray would wait for ever).

    Raises:
        ConfigError: GPUs asked of a cluster without any, or a local instance asked for more
            model actors than it has cores beside the one that decodes.
    """
    cores = float(resources.get("CPU", 1))
    if gpus_per_actor > 0 and not resources.get("GPU"):
        raise ConfigError(
            f"--gpus-per-actor {gpus_per_actor:g}: the Ray cluster has no GPU; leave it out to "
            "score on CPU"
        )
    if address is None and actors * CPUS_PER_ACTOR + 1 > cores:
        raise ConfigError(
            f"--actors {actors}: this local Ray instance has {cores:g} CPU cores, room for at "
            f"most {max(0, int(cores - 1))} model actors beside one core that decodes"
        )
    return cores


def _died() -> WorkerDiedError:
    return WorkerDiedError(
        "Ray could not score this input: the worker scoring it failed on every retry (an "
        "actor that died, for example out of memory, or an unexpected error: see the Ray "
        "logs); the run went on with the other inputs"
    )
