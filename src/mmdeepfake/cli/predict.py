"""`mmdeepfake predict`: detect deepfakes in files, folders or S3 prefixes and write records.

One record per input, in input order. An input that fails (corrupt, no face, no audio, a file
the system will not read, a worker process that died on it) still gets a record, with its
``error`` and ``error_type`` fields set, and makes the exit status non-zero. Flags are checked
before anything is scored (a bad value is a usage error: one line, exit status 2), the output
before the first input, and records are written as they are produced, so Ctrl-C (exit status
130) keeps every finished one. The scoring itself, worker pool included, is
:mod:`mmdeepfake.batch`; this module parses the flags and writes the records.

``--engine ray`` scores on a Ray cluster instead (:mod:`mmdeepfake.scale.predict`; the
``scale`` extra): decoding on CPU workers, the model in ``--actors`` actors, the records written
to ``--out DIR_OR_S3/records.jsonl`` (or ``.parquet``) in the order they finish.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from contextlib import closing
from typing import Any

from mmdeepfake.batch import Job, expand_inputs, score_jobs
from mmdeepfake.cli._common import (
    CLI_ADVICE,
    UsageParser,
    add_endpoint_url,
    add_output,
    bounded_int,
    probability,
    run_cli,
    setup_logging,
    verbosity,
    verbosity_parent,
)
from mmdeepfake.cli._output import CSV_FIELDS, RecordSink
from mmdeepfake.config_check import MAX_NUM_FRAMES, MIN_NUM_FRAMES

__all__ = ["CSV_FIELDS", "build_parser", "expand_inputs", "main"]

PROG = "mmdeepfake-predict"
# Resident memory of one worker process scoring clips with the ResNet-18 detector (torch, the
# model, decoded frames); --workers may not ask for more than the machine has available.
WORKER_MEMORY_BYTES = 1 << 30
_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def _device(text: str) -> str:
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device: use cpu, cuda, cuda:N or mps")
    return text


def _gpu_share(text: str) -> float:
    """An argparse ``type``: GPUs per actor, a fraction below 1 or a whole number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or (value > 1 and not value.is_integer()):  # NaN fails the first test
        raise argparse.ArgumentTypeError(
            f"must be 0, a fraction of a GPU below 1, or a whole number of GPUs, got {text}"
        )
    return value


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = UsageParser(
        prog=prog,
        description="Detect audio-visual deepfakes in videos (files, folders, s3://bucket/prefix).",
        parents=[verbosity_parent("warning")],
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="PATH",
        help="video files, folders (searched recursively) or s3:// prefixes "
        "(default: none; give these or --pair)",
    )
    parser.add_argument(
        "--pair",
        nargs=2,
        action="append",
        default=[],
        metavar=("IMAGE", "AUDIO"),
        help="score a face image with a voice recording (repeatable; default: none)",
    )
    parser.add_argument(
        "--image-only",
        action="append",
        default=[],
        metavar="IMAGE",
        help="score a face image on its own, without a voice (repeatable; default: none)",
    )
    parser.add_argument(
        "--audio-only",
        action="append",
        default=[],
        metavar="AUDIO",
        help="score a voice recording on its own, without a face (repeatable; default: none)",
    )
    parser.add_argument(
        "--model",
        default="starter",
        help="model folder or Hugging Face repo id (default: the bundled starter model)",
    )
    parser.add_argument(
        "--format",
        choices=("json", "jsonl", "csv", "parquet"),
        default="jsonl",
        help="output format: one JSON array, one JSON object per line, CSV, or (with "
        "--engine ray) Parquet (default: jsonl)",
    )
    add_output(
        parser,
        "output file, checked before scoring; jsonl and csv are written as "
        "records come (default: standard output); with --engine ray, a folder or "
        "s3:// prefix that gets records.jsonl or records.parquet (required)",
        metavar="FILE_OR_DIR",
    )
    parser.add_argument(
        "--threshold",
        type=probability,
        help="decision threshold on the fake probability, between 0 and 1 "
        "(default: the model's own)",
    )
    parser.add_argument(
        "--num-frames",
        type=bounded_int(MIN_NUM_FRAMES, MAX_NUM_FRAMES),
        help=f"frames sampled per video, {MIN_NUM_FRAMES} to {MAX_NUM_FRAMES} "
        "(default: the model's own)",
    )
    parser.add_argument(
        "--no-detect-faces",
        dest="detect_faces",
        action="store_false",
        help="the images are already cropped to a face: skip face detection "
        "(default: detect faces)",
    )
    parser.add_argument(
        "--on-unfamiliar",
        choices=("uncertain", "warn"),
        default="uncertain",
        help="input unlike the model's training data: label it uncertain, or "
        "keep the verdict with a warning (default: uncertain)",
    )
    parser.add_argument(
        "--require",
        choices=("any", "both"),
        default="any",
        help="'both' refuses media without a usable face and voice; 'any' "
        "scores the modality that is there (default: any)",
    )
    add_endpoint_url(parser)
    parser.add_argument(
        "--workers",
        type=bounded_int(1),
        default=1,
        help="worker processes, at most the CPU cores and one per GiB of "
        "available memory (default: 1)",
    )
    parser.add_argument(
        "--threads",
        type=bounded_int(1),
        help="torch threads per worker (default: CPU cores / workers); with 2 or "
        "more, each clip's voice and faces are also processed at once",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        type=_device,
        help="torch device: cpu, cuda, cuda:N or mps (default: cpu)",
    )
    scale = parser.add_argument_group(
        "scale-out on Ray (pip install 'mmdeepfake[scale]')",
    )
    scale.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process or --workers processes; ray: a Ray cluster, decoding on "
        "CPU workers and the model in --actors actors (default: local)",
    )
    scale.add_argument(
        "--address",
        help="the Ray cluster to join: auto (a cluster running on this machine) or "
        "ray://HOST:10001 (default: start a local Ray instance)",
    )
    scale.add_argument(
        "--actors",
        type=bounded_int(1),
        help="model actors, each holding the model (default: 1)",
    )
    scale.add_argument(
        "--gpus-per-actor",
        type=_gpu_share,
        help="GPUs each model actor reserves, e.g. 0.5 for two actors per GPU "
        "(default: 0, the actors score on CPU)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="hide the progress bar (default: shown on a terminal for 2 or more inputs)",
    )
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


def _check_engine(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors for flags of the other engine than the one chosen."""
    if args.engine == "local":
        given = [
            flag
            for flag, value in (
                ("--address", args.address),
                ("--actors", args.actors),
                ("--gpus-per-actor", args.gpus_per_actor),
            )
            if value is not None
        ]
        if given:
            parser.error(f"argument {given[0]}: only with --engine ray")
        if args.format == "parquet":
            parser.error("argument --format: parquet only with --engine ray")
        return
    if args.output is None:
        parser.error(
            "argument --out: --engine ray writes records.jsonl or records.parquet to a folder "
            "or s3:// prefix; give it with --out"
        )
    if args.format not in ("jsonl", "parquet"):
        parser.error(f"argument --format: --engine ray writes jsonl or parquet, not {args.format}")
    for flag, value, default, instead in (
        ("--workers", args.workers, 1, "--actors"),
        ("--threads", args.threads, None, "--actors"),
        ("--device", args.device, "cpu", "--gpus-per-actor"),
    ):
        if value != default:
            parser.error(f"argument {flag}: only with --engine local; with ray, use {instead}")


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    _check_engine(parser, args)
    if args.engine == "local":
        _check_resources(parser, args)
    setup_logging(verbosity(args))
    # Torch's OpenMP threads spin while they wait for each other; on a CPU shared with other
    # work, one descheduled thread then stalls every operation (measured: the encoders 5x
    # slower with one of two cores busy). Passive waiting avoids that. It takes effect only
    # before torch is first imported, here and in the worker processes, which inherit it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.engine == "ray":
        return _main_ray(args)
    sink = RecordSink.open(args.format, args.output)
    try:
        jobs = expand_inputs(
            args.inputs, args.pair, args.endpoint_url, args.image_only, args.audio_only
        )
        _run(jobs, args, sink)
    except KeyboardInterrupt:
        sink.close()
        where = args.output or "standard output"
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
    return _report_failures([r for r in sink.records if r.get("error")], len(sink.records))


def _report_failures(failed: Sequence[dict[str, Any]], total: int) -> int:
    """Name each failed input on standard error; the exit status: 1 if any failed, else 0."""
    for record in failed:
        print(f"error: {record['source']}: {record['error']}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {total} inputs failed", file=sys.stderr)
        return 1
    return 0


def _main_ray(args: argparse.Namespace) -> int:
    """``--engine ray``: score on a Ray cluster, write the records to ``--out``."""
    from mmdeepfake.scale.cluster import require_ray

    require_ray()  # before listing a large prefix: say at once when Ray is missing
    from mmdeepfake.scale.predict import score_to

    jobs = expand_inputs(
        args.inputs, args.pair, args.endpoint_url, args.image_only, args.audio_only
    )
    progress = _progress_bar(args, len(jobs))
    try:
        with progress:
            summary = score_to(
                jobs,
                args.output,
                model=args.model,
                fmt=args.format,
                address=args.address,
                actors=args.actors or 1,
                gpus_per_actor=args.gpus_per_actor or 0.0,
                endpoint_url=args.endpoint_url,
                options=_predict_options(args),
                advice=CLI_ADVICE,
                progress=lambda done: progress.update(done - progress.n),
            )
    except KeyboardInterrupt:
        print(f"interrupted: the records finished so far are in {args.output}", file=sys.stderr)
        return 130
    return _report_failures(summary.failed, summary.records)


def _progress_bar(args: argparse.Namespace, total: int) -> Any:
    """A bar over the inputs on standard error; drawn only on a terminal, for 2+ inputs."""
    from tqdm import tqdm

    # disable=None: tqdm draws only on a terminal, so a redirected log gets no bar frames.
    hidden = args.no_progress or total < 2
    return tqdm(total=total, unit="clip", disable=True if hidden else None, file=sys.stderr)


def _run(jobs: list[Job], args: argparse.Namespace, sink: RecordSink) -> None:
    progress = _progress_bar(args, len(jobs))
    records = score_jobs(
        jobs,
        args.model,
        device=args.device,
        workers=args.workers,
        threads=args.threads,
        endpoint_url=args.endpoint_url,
        options=_predict_options(args),
        advice=CLI_ADVICE,
    )
    with progress, closing(records):  # closing: stop workers on Ctrl-C
        for record in records:
            sink.add(record)
            progress.update()


def _predict_options(args: argparse.Namespace) -> dict[str, object]:
    """The ``Detector.predict`` keyword arguments the flags set."""
    options: dict[str, object] = {
        k: v
        for k, v in (("threshold", args.threshold), ("num_frames", args.num_frames))
        if v is not None
    }
    if not args.detect_faces:
        options["detect_faces"] = False
    options.update(on_unfamiliar=args.on_unfamiliar, require=args.require)
    return options


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
