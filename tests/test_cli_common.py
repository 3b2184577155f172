"""The shared command-line error handling: a message and an exit code, never a traceback."""

from __future__ import annotations

import logging

import pytest

from mmdeepfake.cli._common import (
    UsageParser,
    add_no_progress,
    cli_entry,
    parse_command_line,
    run_cli,
    setup_logging,
    verbosity_parent,
)
from mmdeepfake.errors import BucketNotFoundError, MmDeepfakeError


def test_typed_error_becomes_message_and_exit_code(capsys):
    @cli_entry
    def main(argv):
        raise BucketNotFoundError("bucket x does not exist; create it")

    assert main([]) == MmDeepfakeError.exit_code
    err = capsys.readouterr().err
    assert err == "error: bucket x does not exist; create it\n"
    assert "Traceback" not in err


def test_interrupt_usage_errors_and_success(capsys):
    def interrupted(argv):
        raise KeyboardInterrupt

    assert cli_entry(interrupted)(None) == 130
    assert cli_entry(lambda argv: None)(None) == 0
    assert cli_entry(lambda argv: 3)(None) == 3

    def bad_usage(argv):
        import argparse

        argparse.ArgumentParser(prog="tool").parse_args(["--nope"])

    assert cli_entry(bad_usage)([]) == 2
    assert "unrecognized arguments: --nope" in capsys.readouterr().err


def test_run_cli_exits_with_the_code():
    def failing(argv):
        raise MmDeepfakeError("nope")

    with pytest.raises(SystemExit) as info:
        run_cli(failing, [])
    assert info.value.code == MmDeepfakeError.exit_code


def test_bugs_keep_their_traceback():
    def buggy(argv):
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        cli_entry(buggy)([])


def test_setup_logging_levels_and_idempotent(capsys):
    root = logging.getLogger()
    # A command run in this process by an earlier test may have left its stderr handler.
    earlier = [h for h in root.handlers if type(h).__name__ == "_StderrHandler"]
    for handler in earlier:
        root.removeHandler(handler)
    before = list(root.handlers)
    try:
        setup_logging(0)
        setup_logging(1)
        assert root.level == logging.INFO
        assert len(root.handlers) == len(before) + 1
        assert logging.getLogger("botocore").level == logging.WARNING
        logging.getLogger("mmdeepfake.test").info("hello")
        assert "INFO mmdeepfake.test: hello" in capsys.readouterr().err
        setup_logging(2)
        assert logging.getLogger("botocore").level == logging.DEBUG
    finally:
        for handler in root.handlers[:]:
            if handler not in before:
                root.removeHandler(handler)
        for handler in earlier:
            root.addHandler(handler)
        root.setLevel(logging.WARNING)
        for name in ("botocore", "boto3", "s3transfer", "urllib3", "werkzeug", "PIL", "matplotlib"):
            logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.mark.parametrize(
    ("default", "argv", "level"),
    [
        ("warning", [], logging.WARNING),
        ("warning", ["-v"], logging.INFO),
        ("info", [], logging.INFO),
        ("info", ["-v"], logging.DEBUG),
        ("info", ["-q", "--no-progress"], logging.WARNING),
    ],
)
def test_parse_command_line_sets_the_level_the_flags_ask_for(default, argv, level):
    parser = UsageParser(prog="tool", parents=[verbosity_parent(default)])
    add_no_progress(parser)
    root = logging.getLogger()
    try:
        args = parse_command_line(parser, argv)
        assert root.level == level
        assert args.no_progress == ("--no-progress" in argv)
    finally:
        root.setLevel(logging.WARNING)
        for name in ("botocore", "boto3", "s3transfer", "urllib3", "werkzeug", "PIL", "matplotlib"):
            logging.getLogger(name).setLevel(logging.NOTSET)
