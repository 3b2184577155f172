"""`mmdeepfake`: one command, with a subcommand per stage (``mmdeepfake predict ...``).

Each subcommand is a module of this package with ``build_parser(prog)`` and a
``main``-like function ``(argv, prog) -> int``; the table :data:`COMMANDS` names them, so a new
stage is one row. Subcommand modules load only when chosen, so ``mmdeepfake --help`` is fast.
The older console scripts (``mmdeepfake-predict``, ``mmdeepfake-train``, ...) call the same
functions and stay as aliases; their behaviour is the same, only the program name in messages
differs.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from mmdeepfake import __version__
from mmdeepfake.cli._common import UsageParser, cli_entry, run_cli

__all__ = ["COMMANDS", "Command", "build_parser", "main"]

PROG = "mmdeepfake"


@dataclass(frozen=True)
class Command:
    """One subcommand: the module that runs it, its entry function, and a one-line summary."""

    module: str
    entry: str
    summary: str


COMMANDS: dict[str, Command] = {
    "predict": Command(
        "mmdeepfake.cli.predict",
        "main",
        "detect deepfakes in videos, face images and voice recordings",
    ),
    "train": Command(
        "mmdeepfake.cli.train", "_main", "train a detector on a dataset in S3 or a local folder"
    ),
    "evaluate": Command(
        "mmdeepfake.cli.evaluate", "_main", "score a dataset split: metrics, plots and a report"
    ),
    "sweep": Command(
        "mmdeepfake.cli.sweep",
        "_main",
        "train once per value of a hyper-parameter and compare the runs",
    ),
    "prepare": Command(
        "mmdeepfake.cli.prepare",
        "_main",
        "decode a deepfake dataset of videos into the training layout",
    ),
    "synth": Command(
        "mmdeepfake.cli.synth", "_main", "write the synthetic audio-visual emotion dataset"
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: ``--version``, ``--help`` and the subcommand name.

    Everything after the subcommand name goes, untouched, to that subcommand's own parser.
    """
    table = "\n".join(f"  {name:<10}{command.summary}" for name, command in COMMANDS.items())
    parser = UsageParser(
        prog=PROG,
        usage=f"{PROG} [-h] [--version] COMMAND [ARGS ...]",
        description="Audio-visual deepfake detection from the emotional consistency of face "
        "and voice.",
        epilog=f"commands:\n{table}\n\nRun '{PROG} COMMAND --help' for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"{PROG} {__version__}",
        help="print the version and exit (default: off)",
    )
    parser.add_argument(
        "command",
        metavar="COMMAND",
        choices=tuple(COMMANDS),
        help=f"one of: {', '.join(COMMANDS)} (required)",
    )
    parser.add_argument(
        "args",
        nargs=argparse.REMAINDER,
        metavar="ARGS",
        help="the command's own arguments (default: none)",
    )
    return parser


def _main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        build_parser().print_help(sys.stderr)
        return 2
    if argv[0] in COMMANDS:
        # Dispatched by hand, not by argparse, so the subcommand sees its arguments exactly
        # as its alias would ("--" included).
        name, rest = argv[0], argv[1:]
    else:  # --help, --version, or a mistake: the top-level parser answers
        args = build_parser().parse_args(argv)
        name, rest = args.command, args.args
    command = COMMANDS[name]
    entry = getattr(importlib.import_module(command.module), command.entry)
    # The subcommand's own error handling (one line, an exit code) applies as it does for
    # the alias; its messages name it "mmdeepfake COMMAND".
    run = cli_entry(functools.partial(entry, prog=f"{PROG} {name}"))
    return run(rest)


main = cli_entry(_main)


def cli() -> None:
    run_cli(_main)


if __name__ == "__main__":
    cli()
