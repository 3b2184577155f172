"""`mmdeepfake-predict`: detect deepfakes in files, folders or S3 prefixes and write records.

One record per input, in input order. An input that fails (corrupt, no face, no audio) still
gets a record, with its ``error`` field set, and makes the exit status non-zero.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from mmdeepfake.cli._common import run_cli, setup_logging
from mmdeepfake.errors import ConfigError, MediaNotFoundError, MmDeepfakeError

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi")
CSV_FIELDS = (
    "source", "label", "fake_probability", "threshold", "consistency", "face_emotion",
    "voice_emotion", "image_score", "audio_score", "fusion", "modalities", "model", "warnings",
    "error",
)


@dataclass(frozen=True)
class Job:
    """One thing to score: a video, a face image with a voice recording, or one alone."""

    source: str
    audio: str | None = None
    alone: str | None = None  # "image" or "audio": the source is scored on its own


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmdeepfake-predict",
        description="Detect audio-visual deepfakes in videos (files, folders, s3://bucket/prefix).",
    )
    parser.add_argument("inputs", nargs="*", metavar="PATH",
                        help="video files, folders (searched recursively) or s3:// prefixes")
    parser.add_argument("--pair", nargs=2, action="append", default=[], metavar=("IMAGE", "AUDIO"),
                        help="score a face image with a voice recording (repeatable)")
    parser.add_argument("--image-only", action="append", default=[], metavar="IMAGE",
                        help="score a face image on its own, without a voice (repeatable)")
    parser.add_argument("--audio-only", action="append", default=[], metavar="AUDIO",
                        help="score a voice recording on its own, without a face (repeatable)")
    parser.add_argument("--model", default="starter",
                        help="model folder or Hugging Face repo id (default: the bundled starter model)")
    parser.add_argument("--format", choices=("json", "jsonl", "csv"), default="jsonl")
    parser.add_argument("--out", help="output file (default: standard output)")
    parser.add_argument("--threshold", type=float, help="decision threshold on the fake probability")
    parser.add_argument("--num-frames", type=int, help="frames sampled per video")
    parser.add_argument("--on-unfamiliar", choices=("uncertain", "warn"), default="uncertain",
                        help="input unlike the model's training data: label it uncertain "
                             "(default) or keep the verdict with a warning")
    parser.add_argument("--require", choices=("any", "both"), default="any",
                        help="'both' refuses media without a usable face and voice; 'any' "
                             "(default) scores the modality that is there")
    parser.add_argument("--endpoint-url", help="S3 endpoint URL (for S3-compatible servers)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--threads", type=int,
                        help="torch threads per worker (default: CPU cores / workers); with 2 or "
                             "more, each clip's voice and faces are also processed at once")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


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
    _WORKER["detector"] = load_detector(model, device)
    _WORKER["endpoint_url"] = endpoint_url


def load_detector(model: str, device: str = "cpu"):
    from mmdeepfake.detector import Detector

    detector = Detector.starter() if model == "starter" else Detector.from_pretrained(model)
    return detector.to(device)


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
        return {"source": job.source, "error": str(exc), "error_type": type(exc).__name__,
                "model": asdict(_WORKER["detector"].model_info)}


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
    options = {k: v for k, v in (("threshold", args.threshold), ("num_frames", args.num_frames)) if v is not None}
    options.update(on_unfamiliar=args.on_unfamiliar, require=args.require)
    work = [(job, options) for job in jobs]
    if args.workers <= 1:
        _init_worker(args.model, args.device, args.threads, args.endpoint_url)
        yield from map(_score, work)
        return
    import multiprocessing

    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    context = multiprocessing.get_context("spawn")
    with context.Pool(
        args.workers, initializer=_init_worker,
        initargs=(args.model, args.device, threads, args.endpoint_url),
    ) as pool:
        yield from pool.imap(_score, work)


# --- output -------------------------------------------------------------------------------------


def _csv_row(record: dict) -> dict:
    scores = record.get("modality_scores") or {}
    row = {field: record.get(field) for field in CSV_FIELDS}
    row["image_score"] = scores.get("image")
    row["audio_score"] = scores.get("audio")
    row["warnings"] = "; ".join(record.get("warnings") or [])
    row["modalities"] = " ".join(record.get("modalities") or [])
    model = record.get("model") or {}
    row["model"] = f"{model.get('name')} (trained on {model.get('training_data')})"
    return row


def write_records(records: list[dict], fmt: str, stream: io.TextIOBase) -> None:
    if fmt == "json":
        json.dump(records, stream, indent=2)
        stream.write("\n")
    elif fmt == "jsonl":
        stream.writelines(json.dumps(record) + "\n" for record in records)
    else:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(_csv_row(r) for r in records)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    # Torch's OpenMP threads spin while they wait for each other; on a CPU shared with other
    # work, one descheduled thread then stalls every operation (measured: the encoders 5x
    # slower with one of two cores busy). Passive waiting avoids that. It takes effect only
    # before torch is first imported, here and in the worker processes, which inherit it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads must be at least 1")
    jobs = expand_inputs(args.inputs, args.pair, args.endpoint_url, args.image_only,
                         args.audio_only)
    from tqdm import tqdm

    records = []
    progress = tqdm(total=len(jobs), unit="clip", disable=args.no_progress or len(jobs) < 2, file=sys.stderr)
    with progress:
        for record in score_jobs(jobs, args):
            records.append(record)
            progress.update()
    if args.out:
        with open(args.out, "w", newline="") as stream:
            write_records(records, args.format, stream)
    else:
        write_records(records, args.format, sys.stdout)
    failed = [r for r in records if r.get("error")]
    for record in failed:
        print(f"error: {record['source']}: {record['error']}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(records)} inputs failed", file=sys.stderr)
        return 1
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
