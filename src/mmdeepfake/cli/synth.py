"""`mmdeepfake synth`: write the synthetic audio-visual emotion dataset to a folder or S3.

    mmdeepfake synth --output s3://my-bucket/dataset/ --clips 400 --seed 0 --variant consistency

The dataset goes exactly where ``--output`` (or ``--out``) points (training's default prefix is
``dataset/``, so ``--output s3://BUCKET/dataset/`` matches ``mmdeepfake train --bucket BUCKET``).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from mmdeepfake.cli._common import (
    UsageParser,
    add_endpoint_url,
    add_no_progress,
    add_output,
    bounded_int,
    cli_entry,
    parse_command_line,
    run_cli,
    verbosity_parent,
)
from mmdeepfake.data.synth import VARIANTS

PROG = "mmdeepfake-synth"


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not three comma-separated numbers, e.g. 0.7,0.15,0.15"
        ) from None
    return values


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = UsageParser(
        prog=prog,
        description="Write a synthetic audio-visual emotion dataset (faces + voices) in the "
        "mmdeepfake dataset layout, deterministic by seed.",
        parents=[verbosity_parent("warning")],
    )
    add_output(
        parser, "folder or s3://BUCKET/PREFIX to write the dataset to (required)", required=True
    )
    parser.add_argument(
        "--clips", type=bounded_int(1), default=200, help="number of clips (default: 200)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default="consistency",
        help="consistency: fakes only mismatch emotions; mixed: fakes may also "
        "carry face/voice artefacts (default: consistency)",
    )
    parser.add_argument(
        "--videos",
        action="store_true",
        help="also write mp4 clips (H.264 + AAC) under videos/ (default: off)",
    )
    parser.add_argument(
        "--frames-per-clip",
        type=bounded_int(1),
        default=4,
        help="face frames written per clip (default: 4)",
    )
    parser.add_argument(
        "--splits",
        type=_fractions,
        default=(0.7, 0.15, 0.15),
        help="train,validate,test fractions (default: 0.7,0.15,0.15)",
    )
    add_endpoint_url(parser)
    add_no_progress(parser)
    return parser


def _main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Parse arguments, generate the dataset, print a one-line summary."""
    args = parse_command_line(build_parser(prog), argv)
    from mmdeepfake.data.storage import open_storage
    from mmdeepfake.data.synth import generate_dataset

    storage = open_storage(args.output, endpoint_url=args.endpoint_url)
    summary = generate_dataset(
        storage,
        args.clips,
        args.seed,
        args.variant,
        args.videos,
        frames_per_clip=args.frames_per_clip,
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
