"""What every mmdeepfake command shares: error handling and logging set-up.

A command's ``main(argv) -> int`` raises :class:`~mmdeepfake.errors.MmDeepfakeError` for
anything a person can fix. These helpers turn that into one ``error: <message>`` line on stderr
and the error's exit code, with no traceback: a traceback tells a user nothing they can act on,
while the message says what is wrong and what to do. Ctrl-C exits with 130 (the shell
convention for SIGINT). Bugs (any other exception) still show their traceback.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from mmdeepfake.errors import DETECT_FACES, LOCAL_MODEL_FOLDER, MmDeepfakeError, render

__all__ = [
    "CLI_ADVICE",
    "UsageParser",
    "add_endpoint_url",
    "add_no_progress",
    "add_output",
    "bounded_int",
    "cli_entry",
    "endpoint_url",
    "parse_command_line",
    "probability",
    "run_cli",
    "setup_logging",
    "verbosity",
    "verbosity_parent",
]

# How the command line words the remedies that errors name by hint (see mmdeepfake.errors).
CLI_ADVICE: dict[str, str] = {
    DETECT_FACES: "If the images are already cropped to a face, add --no-detect-faces.",
    LOCAL_MODEL_FOLDER: (
        "To use a model without the hub, give its folder (written by "
        "Detector.save_pretrained): --model ./my-model."
    ),
}


class UsageParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line: ``error: ...`` and exit status 2.

    argparse's default prints the whole usage block before the error; on a terminal or in a
    log the line that matters is then the second of several.
    """

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def bounded_int(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high`` (no upper bound if None)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def probability(text: str) -> float:
    """An argparse ``type``: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def endpoint_url(text: str) -> str:
    """An argparse ``type``: an http(s) URL with a host and a valid port."""
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


# --- the flags every command spells alike ----------------------------------------------------

ENDPOINT_URL_HELP = (
    "S3 endpoint URL, for S3-compatible servers such as a local moto or MinIO (default: AWS S3)"
)


def add_endpoint_url(container: Any, help: str = ENDPOINT_URL_HELP) -> None:
    """``--endpoint-url``, in every command that reads or writes S3.

    ``container`` is a parser or an argument group."""
    container.add_argument(
        "--endpoint-url", dest="endpoint_url", type=endpoint_url, metavar="URL", help=help
    )


def add_output(
    container: Any, help: str, *, metavar: str = "DIR_OR_S3_URI", required: bool = False
) -> None:
    """``--output`` (also spelled ``--out``), where a command writes what it makes."""
    container.add_argument(
        "--output", "--out", dest="output", metavar=metavar, required=required, help=help
    )


PROGRESS_HELP = "hide the progress bar (default: shown when stderr is a terminal)"


def add_no_progress(container: Any, help: str = PROGRESS_HELP) -> None:
    """``--no-progress``, in every command that draws a progress bar (``args.no_progress``)."""
    container.add_argument("--no-progress", action="store_true", help=help)


MainFn = Callable[[Sequence[str] | None], int | None]

# Libraries whose INFO/DEBUG chatter drowns the command's own messages.
_NOISY_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "werkzeug", "PIL", "matplotlib")


def _call(main_fn: MainFn, argv: Sequence[str] | None, advice: Mapping[str, str]) -> int:
    try:
        code = main_fn(argv)
    except MmDeepfakeError as exc:
        print(f"error: {render(exc, advice)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # argparse's usage errors and --help
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(f"error: {exc.code}", file=sys.stderr)
        return 1
    return int(code or 0)


def cli_entry(main_fn: MainFn) -> Callable[[Sequence[str] | None], int]:
    """Decorate ``main(argv) -> int`` so it returns an exit code instead of raising.

    The result is safe as a console-script entry point (``sys.exit(main())``) and convenient
    in tests (``assert main([...]) == 0``).
    """

    @functools.wraps(main_fn)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        return _call(main_fn, argv, CLI_ADVICE)

    return wrapper


def run_cli(
    main_fn: MainFn,
    argv: Sequence[str] | None = None,
    advice: Mapping[str, str] = CLI_ADVICE,
) -> NoReturn:
    """Run ``main_fn(argv)`` with the shared error handling and exit with its status.

    ``advice`` words the remedies errors name by hint (:data:`CLI_ADVICE` by default).
    """
    sys.exit(_call(main_fn, argv, advice))


_LEVEL_NAMES = ("warning", "info", "debug")


def verbosity_parent(default: str = "info") -> argparse.ArgumentParser:
    """A parent parser with ``-v/--verbose`` and ``-q/--quiet``, alike in every command.

    ``-q`` keeps warnings and errors only; each ``-v`` adds one level above the command's
    ``default`` level (``warning`` < ``info`` < ``debug``). Commands differ only in that
    default: those that report progress as they go start at ``info``, those whose answer is
    their output start at ``warning``. Read the result with :func:`verbosity`.
    """
    if default not in _LEVEL_NAMES:
        raise ValueError(f"default must be one of {_LEVEL_NAMES}, got {default!r}")
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("messages")
    exclusive = group.add_mutually_exclusive_group()
    exclusive.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help=f"more log messages on stderr, one level per -v: info, then debug "
        f"(default level: {default})",
    )
    exclusive.add_argument(
        "-q", "--quiet", action="store_true", help="warnings and errors only (default: off)"
    )
    parent.set_defaults(verbosity_default=_LEVEL_NAMES.index(default))
    return parent


def verbosity(args: argparse.Namespace) -> int:
    """The level :func:`setup_logging` takes (0 warning, 1 info, 2 debug) from -v/-q."""
    if args.quiet:
        return 0
    return min(args.verbosity_default + args.verbose, len(_LEVEL_NAMES) - 1)


def parse_command_line(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None
) -> argparse.Namespace:
    """Parse ``argv`` and set up logging at the level its ``-v``/``-q`` ask for.

    The first step of every command's ``main``: the parser must have
    :func:`verbosity_parent` among its parents, so that messages logged while the command
    runs follow the flags from the start.
    """
    args = parser.parse_args(argv)
    setup_logging(verbosity(args))
    return args


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (pytest and tools swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(verbose: int | bool = 0) -> None:
    """Log to stderr: warnings by default, INFO with ``-v``, DEBUG (libraries too) with ``-vv``.

    Safe to call more than once (each command's ``main`` calls it): the handler is added once,
    and other handlers on the root logger (a test's log capture) are left alone.
    """
    level = logging.WARNING if not verbose else logging.INFO if int(verbose) == 1 else logging.DEBUG
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    # The handler filters too: a library that lowers its own logger's level (training keeps
    # "mmdeepfake" at INFO to fill its train.log) would otherwise get past -q.
    handler.setLevel(level)
    root.setLevel(level)
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if int(verbose) >= 2 else logging.WARNING)
