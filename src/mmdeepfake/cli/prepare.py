"""`mmdeepfake prepare`: a downloaded dataset into the training layout, in a folder or S3.

    mmdeepfake prepare s3://datasets/FakeAVCeleb_v1.2 --format fakeavceleb \\
        --out s3://datasets/fakeavceleb-prepared --workers 8

Videos are read into memory from SRC and the face crops, voices and labels are written straight
to DEST (see :func:`mmdeepfake.prepare.engine.prepare_dataset`); running the command again
resumes where it stopped. ``--engine ray`` prepares the clips on Ray instead of local processes
(:mod:`mmdeepfake.scale.preparing`, docs/scaling.md):

    mmdeepfake prepare s3://datasets/raw --format dfdc --out s3://datasets/dfdc-prepared \\
        --engine ray --address auto
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from mmdeepfake.cli._common import (
    UsageParser,
    add_endpoint_url,
    add_output,
    bounded_int,
    cli_entry,
    parse_command_line,
    run_cli,
    verbosity_parent,
)
from mmdeepfake.errors import ConfigError

PROG = "mmdeepfake-prepare"
#: The ``--format`` names, listed here so ``--help`` does not import the adapters.
FORMAT_NAMES = ("fakeavceleb", "dfdc", "lavdf", "avdeepfake1m", "folders")
ENGINES = ("local", "ray")
#: What ``ray.init(address=...)`` joins: a cluster on this machine, Ray Client, or a head's GCS.
_RAY_ADDRESS = re.compile(r"^(auto|ray://[^\s/:]+:\d+|[^\s/:]+:\d+)$")


def _ray_address(text: str) -> str:
    if not _RAY_ADDRESS.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a Ray cluster address: auto, ray://HOST:10001 or HOST:6379"
        )
    return text


def _fractions(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or any(not 0 <= v <= 1 for v in values) or abs(sum(values) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not three train,validate,test fractions that add up to 1, "
            "e.g. 0.8,0.1,0.1"
        )
    return values[0], values[1], values[2]


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = UsageParser(
        prog=prog,
        description="Decode a dataset of videos into the training layout: face crops as "
        "predict takes them, 16 kHz voices and labels/clips.csv, split by identity.",
        parents=[verbosity_parent("warning")],
    )
    parser.add_argument(
        "src", metavar="SRC", help="the dataset's root: a folder or s3://BUCKET/PREFIX (required)"
    )
    parser.add_argument(
        "--format",
        required=True,
        choices=FORMAT_NAMES,
        help="how the dataset is laid out (required; docs/data.md)",
    )
    add_output(
        parser, "folder or s3://BUCKET/PREFIX to write the layout to (required)", required=True
    )
    add_endpoint_url(parser)
    parser.add_argument(
        "--workers",
        metavar="N",
        type=bounded_int(1),
        default=None,
        help="clips prepared at once: local processes (default: 1), or with --engine ray Ray "
        "tasks of one core each (default: every core of the Ray instance or cluster; without "
        "--address also the cores of the local Ray instance)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="local",
        help="local: this machine's processes; ray: Ray Data, on a local Ray instance or the "
        "cluster of --address (needs mmdeepfake[scale]; docs/scaling.md) (default: local)",
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        type=_ray_address,
        default=None,
        help="with --engine ray, the Ray cluster to join: auto (this machine is a node), "
        "ray://HOST:10001 (Ray Client) or HOST:6379 (default: start a local Ray instance)",
    )
    parser.add_argument(
        "--frames-per-clip",
        metavar="K",
        type=bounded_int(1, 256),
        default=8,
        help="face frames taken evenly over each clip (default: 8)",
    )
    parser.add_argument(
        "--max-clips",
        metavar="N",
        type=bounded_int(1),
        default=None,
        help="prepare a random subset of this many clips (default: all)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of splits and subset (default: 0)"
    )
    parser.add_argument(
        "--splits",
        metavar="TRAIN,VAL,TEST",
        type=_fractions,
        default=(0.8, 0.1, 0.1),
        help="train,validate,test fractions where the dataset has no official split "
        "(default: 0.8,0.1,0.1)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="hide the progress bar (default: shown when stderr is a terminal)",
    )
    return parser


def _main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Parse arguments, prepare the dataset, print the summary."""
    args = parse_command_line(build_parser(prog), argv)
    from mmdeepfake.prepare.engine import ClipRunner, prepare_dataset

    runner: ClipRunner | None = None
    if args.engine == "ray":
        from mmdeepfake.scale.preparing import RayRunner

        runner = RayRunner(address=args.address, workers=args.workers)
    elif args.address is not None:
        raise ConfigError("--address names a Ray cluster: add --engine ray to use it")
    summary = prepare_dataset(
        args.src,
        args.output,
        args.format,
        endpoint_url=args.endpoint_url,
        workers=1 if runner is not None else (args.workers or 1),
        frames_per_clip=args.frames_per_clip,
        max_clips=args.max_clips,
        seed=args.seed,
        splits=args.splits,
        progress=not args.no_progress,
    )
    print(summary.describe())
    return 0


main = cli_entry(_main)


def cli() -> None:
    run_cli(_main)


if __name__ == "__main__":
    cli()
