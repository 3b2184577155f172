"""`mmdeepfake sweep`: short trainings over the values of one hyper-parameter, compared.

Sweep flags are parsed here; every other flag is a `mmdeepfake train` flag (data source,
``--config``, ``--epochs``, ...) and is parsed by that command's own parser, so the two
commands accept exactly the same training options. The work is in
:func:`mmdeepfake.sweep.run_sweep`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from typing import Any

from mmdeepfake.cli._common import UsageParser, cli_entry, parse_command_line, run_cli
from mmdeepfake.errors import ConfigError
from mmdeepfake.sweep import SWEEP_PARAMS

PROG = "mmdeepfake-sweep"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = UsageParser(
        prog=prog,
        description="Train once per value of one hyper-parameter and compare the runs on the "
        "validation split (and a test split). Writes results.json, results.csv, a plot and "
        "index.html under <outputs>/sweeps/<sweep_id>/.",
        epilog="Every mmdeepfake train flag is accepted too (--bucket/--data, --config, --epochs, "
        "--output, -v/-q, ...; see mmdeepfake train --help). Example: mmdeepfake sweep --param "
        "fusion --values all --data ./synthetic --config tiny",
    )
    parser.add_argument(
        "--param",
        required=True,
        choices=tuple(SWEEP_PARAMS),
        help="the hyper-parameter to vary (required)",
    )
    parser.add_argument(
        "--values",
        required=True,
        nargs="+",
        metavar="V",
        help="values, space- or comma-separated ('all' for every fusion strategy) (required)",
    )
    parser.add_argument(
        "--test-split",
        dest="test_split",
        default="test",
        help="also score each best model on this split ('none' to skip; default: test)",
    )
    parser.add_argument(
        "--sweep-id",
        dest="sweep_id",
        help="name of the sweep (default: sweep-<UTC time>)",
    )
    return parser


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    args, rest = build_parser(prog).parse_known_args(argv)
    from mmdeepfake.cli.train import build_parser as train_parser
    from mmdeepfake.cli.train import config_from_args
    from mmdeepfake.sweep import parse_values, run_sweep

    targs = parse_command_line(train_parser(prog), rest)
    values = parse_values(args.param, args.values)
    if targs.push_to_hub:
        raise ConfigError(
            "a sweep does not push models; push the run you pick with mmdeepfake train"
        )
    config = config_from_args(targs)
    config.check_source()
    test_split = None if args.test_split.lower() == "none" else args.test_split
    result = run_sweep(
        config,
        args.param,
        values,
        test_split=test_split,
        progress=not targs.no_progress,
        sweep_id=args.sweep_id,
    )
    print(f"sweep {result.sweep_id} over {result.param}:")
    print(
        f"  {'value':<12}{'val AUC':>9}{'val acc':>9}{'test AUC':>10}"
        f"{'face AUC':>10}{'voice AUC':>11}"
    )
    for row in result.rows:
        print(
            f"  {row['value']!s:<12}{_fmt(row.get('val_auc')):>9}{_fmt(row.get('val_accuracy')):>9}"
            f"{_fmt(row.get('test_auc')):>10}{_fmt(row.get('val_auc_image')):>10}"
            f"{_fmt(row.get('val_auc_audio')):>11}"
        )
    print(f"written to {result.output_uri}")
    return 0


main = cli_entry(_main)


def cli() -> None:
    run_cli(_main)


if __name__ == "__main__":
    cli()
