"""`mmdeepfake-predict`: detect deepfakes in files, folders or S3 prefixes and write records.

One record per input, in input order. An input that fails (corrupt, no face, no audio, a file
the system will not read, a worker process that died on it) still gets a record, with its
``error`` and ``error_type`` fields set, and makes the exit status non-zero. Flags are checked
before anything is scored (a bad value is a usage error: one line, exit status 2), the output
before the first input, and records are written as they are produced, so Ctrl-C (exit status
130) keeps every finished one.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from mmdeepfake.cli._common import (
    CLI_ADVICE,
    UsageParser,
    bounded_int,
    probability,
    run_cli,
    setup_logging,
    verbosity,
    verbosity_parent,
)
from mmdeepfake.cli._output import CSV_FIELDS, RecordSink
from mmdeepfake.config_check import MAX_NUM_FRAMES, MIN_NUM_FRAMES
from mmdeepfake.errors import (
    ConfigError,
    MediaNotFoundError,
    MediaUnreadableError,
    MmDeepfakeError,
    WorkerDiedError,
    render,
)

__all__ = ["CSV_FIELDS", "build_parser", "expand_inputs", "main"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi")
# Resident memory of one worker process scoring clips with the ResNet-18 detector (torch, the
# model, decoded frames); --workers may not ask for more than the machine has available.
WORKER_MEMORY_BYTES = 1 << 30
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


@dataclass(frozen=True)
class Job:
    """One thing to score: a video, a face image with a voice recording, or one alone."""

    source: str
    audio: str | None = None
    alone: str | None = None  # "image" or "audio": the source is scored on its own


def _endpoint_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http(s) URL such as http://127.0.0.1:9000"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has an invalid port") from None
    return text


def _device(text: str) -> str:
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda, cuda:N or mps")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="mmdeepfake-predict",
        description="Detect audio-visual deepfakes in videos (files, folders, s3://bucket/prefix).",
        parents=[verbosity_parent("warning")],
    )
    parser.add_argument("inputs", nargs="*", metavar="PATH",
                        help="video files, folders (searched recursively) or s3:// prefixes "
                             "(default: none; give these or --pair)")
    parser.add_argument("--pair", nargs=2, action="append", default=[], metavar=("IMAGE", "AUDIO"),
                        help="score a face image with a voice recording (repeatable; default: none)")
    parser.add_argument("--image-only", action="append", default=[], metavar="IMAGE",
                        help="score a face image on its own, without a voice (repeatable; "
                             "default: none)")
    parser.add_argument("--audio-only", action="append", default=[], metavar="AUDIO",
                        help="score a voice recording on its own, without a face (repeatable; "
                             "default: none)")
    parser.add_argument("--model", default="starter",
                        help="model: a folder, hf-hub:ORG/NAME (or ORG/NAME), s3://BUCKET/PREFIX "
                             "or starter (default: the bundled starter model)")
    parser.add_argument("--format", choices=("json", "jsonl", "csv"), default="jsonl",
                        help="output format: one JSON array, one JSON object per line, or CSV "
                             "(default: jsonl)")
    parser.add_argument("--out", help="output file, checked before scoring; jsonl and csv are "
                                      "written as records come (default: standard output)")
    parser.add_argument("--threshold", type=probability,
                        help="decision threshold on the fake probability, between 0 and 1 "
                             "(default: the model's own)")
    parser.add_argument("--num-frames", type=bounded_int(MIN_NUM_FRAMES, MAX_NUM_FRAMES),
                        help=f"frames sampled per video, {MIN_NUM_FRAMES} to {MAX_NUM_FRAMES} "
                             "(default: the model's own)")
    parser.add_argument("--no-detect-faces", dest="detect_faces", action="store_false",
                        help="the images are already cropped to a face: skip face detection "
                             "(default: detect faces)")
    parser.add_argument("--on-unfamiliar", choices=("uncertain", "warn"), default="uncertain",
                        help="input unlike the model's training data: label it uncertain, or "
                             "keep the verdict with a warning (default: uncertain)")
    parser.add_argument("--require", choices=("any", "both"), default="any",
                        help="'both' refuses media without a usable face and voice; 'any' "
                             "scores the modality that is there (default: any)")
    parser.add_argument("--endpoint-url", type=_endpoint_url,
                        help="S3 endpoint URL, for S3-compatible servers (default: AWS S3)")
    parser.add_argument("--workers", type=bounded_int(1), default=1,
                        help="worker processes, at most the CPU cores and one per GiB of "
                             "available memory (default: 1)")
    parser.add_argument("--threads", type=bounded_int(1),
                        help="torch threads per worker (default: CPU cores / workers); with 2 or "
                             "more, each clip's voice and faces are also processed at once")
    parser.add_argument("--device", default="cpu", type=_device,
                        help="torch device: cpu, cuda, cuda:N or mps (default: cpu)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bar (default: shown on a terminal for 2 or more "
                             "inputs)")
    return parser


def _check_resources(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors for flags that ask for more than this machine has."""
    import psutil

    cores = os.cpu_count() or 1
    by_memory = max(1, psutil.virtual_memory().available // WORKER_MEMORY_BYTES)
    if args.workers > min(cores, by_memory):
        parser.error(
            f"argument --workers: {args.workers} is more than this machine can run "
            f"({cores} CPU cores, memory for {by_memory} workers)"
        )
    if args.device != "cpu":
        import torch

        kind, _, index = args.device.partition(":")
        available = {
            "cuda": torch.cuda.device_count(),
            "mps": int(torch.backends.mps.is_available()),
        }[kind]
        if int(index or 0) >= available:
            parser.error(f"argument --device: {args.device} is not available on this machine")


def expand_inputs(
    inputs: list[str],
    pairs: list[list[str]],
    endpoint_url: str | None,
    images: list[str] = (),
    audios: list[str] = (),
) -> list[Job]:
    """Resolve files, folders and S3 prefixes into jobs, in a stable order."""
    jobs: list[Job] = []
    for item in inputs:
        if item.startswith("s3://"):
            jobs.extend(Job(uri) for uri in _list_s3_videos(item, endpoint_url))
        elif os.path.isdir(item):
            found = sorted(p for p in Path(item).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise MediaNotFoundError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) under {item}")
            jobs.extend(Job(str(p)) for p in found)
        else:
            jobs.append(Job(item))
    jobs.extend(Job(image, audio) for image, audio in pairs)
    jobs.extend(Job(image, alone="image") for image in images)
    jobs.extend(Job(audio, alone="audio") for audio in audios)
    if not jobs:
        raise ConfigError("nothing to score: give video paths, folders, s3:// prefixes, --pair, "
                          "--image-only or --audio-only")
    return jobs


def _list_s3_videos(uri: str, endpoint_url: str | None) -> list[str]:
    from mmdeepfake.data.storage import open_storage

    storage = open_storage(uri, endpoint_url=endpoint_url)
    keys = sorted(k for k in storage.list() if k.lower().endswith(VIDEO_SUFFIXES))
    if not keys:
        raise MediaNotFoundError(f"no video files under {uri}")
    return [storage.uri(k) for k in keys]


# --- scoring (also run inside worker processes) ------------------------------------------------

_WORKER: dict = {}


def _init_worker(model: str, device: str, threads: int | None, endpoint_url: str | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    from mmdeepfake.loading import load_detector

    _WORKER["detector"] = load_detector(model, endpoint_url=endpoint_url).to(device)
    _WORKER["endpoint_url"] = endpoint_url


def _score(job_and_options: tuple[Job, dict]) -> dict:
    job, options = job_and_options
    try:
        detector = _WORKER["detector"]
        media = _read(job.source, _WORKER["endpoint_url"])
        if job.alone is not None:
            prediction = detector.predict(**{job.alone: media}, **options)
        elif job.audio is None:
            prediction = detector.predict(media, **options)
        else:
            prediction = detector.predict(image=media, audio=_read(job.audio, _WORKER["endpoint_url"]), **options)
        record = prediction.to_dict()
        record["source"] = job.source
        record["error"] = None
        return record
    except MmDeepfakeError as exc:
        return _error_record(job, exc, _WORKER["detector"])
    except OSError as exc:  # permission denied, a path too long, an I/O error: this input only
        what = exc.filename or job.source
        unreadable = MediaUnreadableError(f"cannot read {what}: {exc.strerror or exc}")
        return _error_record(job, unreadable, _WORKER["detector"])


def _error_record(job: Job, exc: MmDeepfakeError, detector=None) -> dict:
    """The record of an input that failed; the message's advice is worded for this command.

    ``detector`` names the model that refused the input (absent when its worker died)."""
    record = {"source": job.source, "error": render(exc, CLI_ADVICE),
              "error_type": type(exc).__name__}
    if detector is not None:
        record["model"] = asdict(detector.model_info)
    return record


def _worker_died(job_and_options: tuple[Job, dict], exitcode: int | None) -> dict:
    """The record of an input whose worker process ended while scoring it."""
    if exitcode is not None and exitcode < 0:
        how = f"was killed by signal {-exitcode}"
    else:
        how = f"exited with status {exitcode}"
    died = WorkerDiedError(
        f"the worker process scoring this input {how} (for example, out of memory); the run "
        "went on with the other inputs"
    )
    return _error_record(job_and_options[0], died)


def _read(source: str, endpoint_url: str | None):
    """Local paths are passed through; S3 objects are read into memory, never to disk."""
    if not source.startswith("s3://"):
        return source
    from mmdeepfake.data.storage import open_storage

    bucket, _, key = source[len("s3://"):].partition("/")
    storages = _WORKER.setdefault("storages", {})
    if bucket not in storages:
        storages[bucket] = open_storage(f"s3://{bucket}", endpoint_url=endpoint_url)
    return storages[bucket].read_bytes(key)


def score_jobs(jobs: list[Job], args: argparse.Namespace) -> Iterator[dict]:
    """Score every job, in order, in this process or in a pool of worker processes."""
    options: dict = {
        k: v
        for k, v in (("threshold", args.threshold), ("num_frames", args.num_frames))
        if v is not None
    }
    if not args.detect_faces:
        options["detect_faces"] = False
    options.update(on_unfamiliar=args.on_unfamiliar, require=args.require)
    work = [(job, options) for job in jobs]
    if args.workers <= 1:
        _init_worker(args.model, args.device, args.threads, args.endpoint_url)
        yield from map(_score, work)
        return
    import multiprocessing

    from mmdeepfake.cli._workers import WorkerPool

    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    initargs = (args.model, args.device, threads, args.endpoint_url)
    context = multiprocessing.get_context("spawn")
    with WorkerPool(args.workers, _init_worker, initargs, context) as pool:
        yield from pool.imap(_score, work, on_death=_worker_died)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_resources(parser, args)
    setup_logging(verbosity(args))
    # Torch's OpenMP threads spin while they wait for each other; on a CPU shared with other
    # work, one descheduled thread then stalls every operation (measured: the encoders 5x
    # slower with one of two cores busy). Passive waiting avoids that. It takes effect only
    # before torch is first imported, here and in the worker processes, which inherit it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sink = RecordSink.open(args.format, args.out)
    try:
        jobs = expand_inputs(
            args.inputs, args.pair, args.endpoint_url, args.image_only, args.audio_only
        )
        _run(jobs, args, sink)
    except KeyboardInterrupt:
        sink.close()
        where = args.out or "standard output"
        done = len(sink.records)
        print(f"interrupted: {done} finished records written to {where}", file=sys.stderr)
        return 130
    except BaseException:
        if sink.records:
            sink.close()
        else:
            sink.discard()
        raise
    sink.close()
    failed = [r for r in sink.records if r.get("error")]
    for record in failed:
        print(f"error: {record['source']}: {record['error']}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(sink.records)} inputs failed", file=sys.stderr)
        return 1
    return 0


def _run(jobs: list[Job], args: argparse.Namespace, sink: RecordSink) -> None:
    from tqdm import tqdm

    # disable=None: tqdm draws only on a terminal, so a redirected log gets no bar frames.
    hidden = args.no_progress or len(jobs) < 2
    progress = tqdm(total=len(jobs), unit="clip", disable=True if hidden else None, file=sys.stderr)
    with progress, closing(score_jobs(jobs, args)) as records:  # closing: stop workers on Ctrl-C
        for record in records:
            sink.add(record)
            progress.update()


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
