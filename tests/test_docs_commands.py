"""The mmdeepfake commands the docs show parse with the commands' real parsers.

Every shell block (```bash, ```sh or an unlabelled fence) of the README, docs/*.md and the EC2
walk-through is split into commands as the shell splits them (backslash continuations,
quotes, comments, ``&&``); each command that runs mmdeepfake (``mmdeepfake CMD``,
``mmdeepfake-CMD``, ``python -m mmdeepfake.cli.CMD``, ``torchrun ... -m mmdeepfake.cli.CMD``)
is parsed by that command's own argparse parser. A flag renamed or removed in the code fails
here until the docs follow. Usage synopses (``[--workers N]``) are not commands and are left out.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mmdeepfake.cli.main import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
WALK_THROUGH = ROOT / "scripts" / "ec2" / "README.md"
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), WALK_THROUGH)
SHELL_FENCES = ("bash", "sh", "shell", "")
# Example values of the shell variables the docs' commands use.
VARIABLES = {"S3_ENDPOINT": "http://127.0.0.1:9000"}

_FENCE = re.compile(r"^\s*```(\w*)\s*$")
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_SEPARATORS = {"&&", "||", ";", "|"}


@dataclass(frozen=True)
class DocCommand:
    """One mmdeepfake command of a document: where it is, which command, its arguments."""

    where: str
    command: str
    args: list[str]


def shell_blocks(text: str) -> Iterator[tuple[int, list[str]]]:
    """``(line number of the first line, lines)`` of each shell code block in ``text``."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        i += 1
        if not fence:
            continue
        start, body = i + 1, []
        while i < len(lines) and not _FENCE.match(lines[i]):
            body.append(lines[i])
            i += 1
        i += 1
        if fence.group(1) in SHELL_FENCES:
            yield start, body


def shell_commands(body: list[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line offset, words)`` of each command in a block, split as the shell would."""
    pending, first = "", None
    for offset, line in enumerate(body):
        first = offset if first is None else first
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        pending += line
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote runs on to the next line
            pending += "\n"
            continue
        command: list[str] = []
        for word in [*words, ";"]:
            if word in _SEPARATORS:
                if command:
                    yield first, command
                command = []
            else:
                command.append(word)
        pending, first = "", None


def _example_value(match: re.Match[str]) -> str:
    name = match.group(1)
    if name not in VARIABLES:
        raise AssertionError(f"a doc command uses ${name}: add an example value to VARIABLES")
    return VARIABLES[name]


def _mmdeepfake_command(words: list[str]) -> tuple[str, list[str]] | None:
    """``(command, arguments)`` when ``words`` run an mmdeepfake command, else None: the program
    (``mmdeepfake CMD``, ``mmdeepfake-CMD``, any folder) or a module run with ``-m``."""
    while words and re.fullmatch(r"\w+=.*", words[0]):  # VAR=value before the program
        words = words[1:]
    program = words[0].rsplit("/", 1)[-1] if words else ""
    if program == "mmdeepfake" and len(words) > 1 and words[1] in COMMANDS:
        return words[1], words[2:]
    if program.startswith("mmdeepfake-") and program.removeprefix("mmdeepfake-") in COMMANDS:
        return program.removeprefix("mmdeepfake-"), words[1:]
    for i, word in enumerate(words[:-1]):
        module = words[i + 1]
        if word != "-m":
            continue
        if module == "mmdeepfake" and i + 2 < len(words) and words[i + 2] in COMMANDS:
            return words[i + 2], words[i + 3 :]
        if module.startswith("mmdeepfake.cli."):
            return module.rsplit(".", 1)[-1], words[i + 2 :]
    return None


def doc_commands(path: Path) -> list[DocCommand]:
    """Every mmdeepfake command in the shell blocks of the document at ``path``."""
    found = []
    for start, body in shell_blocks(path.read_text()):
        for offset, words in shell_commands(body):
            parsed = _mmdeepfake_command(words)
            if parsed is None or any(w.startswith("[") for w in parsed[1]):
                continue
            name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
            args = [_VARIABLE.sub(_example_value, word) for word in parsed[1]]
            found.append(DocCommand(f"{name}:{start + offset}", parsed[0], args))
    return found


def parse_error(command: str, args: list[str]) -> str | None:
    """What the command's parser says about ``args``: None when it takes them."""
    module = importlib.import_module(COMMANDS[command].module)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            if command == "sweep":  # its own flags, then the rest are training flags
                _, rest = module.build_parser().parse_known_args(args)
                importlib.import_module("mmdeepfake.cli.train").build_parser().parse_args(rest)
            else:
                module.build_parser().parse_args(args)
    except SystemExit:
        return stderr.getvalue().strip() or "the parser exited"
    return None


ALL_COMMANDS = [c for path in DOCUMENTS for c in doc_commands(path)]


@pytest.mark.parametrize("doc", ALL_COMMANDS, ids=[c.where for c in ALL_COMMANDS])
def test_each_documented_command_parses(doc):
    error = parse_error(doc.command, doc.args)
    assert error is None, f"{doc.where}: mmdeepfake {doc.command} {shlex.join(doc.args)}\n{error}"


def test_the_walk_through_runs_prepare_train_evaluate_on_the_prepared_prefix():
    steps = {c.command: c.args for c in doc_commands(WALK_THROUGH)}
    assert {"prepare", "train", "evaluate"} <= set(steps)
    prepared = importlib.import_module("mmdeepfake.cli.prepare").build_parser()
    prepared = prepared.parse_args(steps["prepare"])
    train = importlib.import_module("mmdeepfake.cli.train").build_parser()
    train = train.parse_args(steps["train"])
    evaluated = importlib.import_module("mmdeepfake.cli.evaluate").build_parser()
    evaluated = evaluated.parse_args(steps["evaluate"])
    # Training and evaluation read the prefix prepare wrote, in the same bucket.
    assert prepared.output.rstrip("/") == f"s3://{train.bucket}/{train.prefix}".rstrip("/")
    assert (evaluated.bucket, evaluated.prefix) == (train.bucket, train.prefix)
    assert prepared.format == "fakeavceleb" and evaluated.audit == ["silence"]
    assert evaluated.model.startswith(f"s3://{train.bucket}/outputs/")


def test_a_renamed_flag_in_a_doc_fails(tmp_path):
    doc = tmp_path / "walk.md"
    doc.write_text(
        "```bash\n"
        "aws s3 sync data s3://b/raw/  # not ours\n"
        "mmdeepfake prepare s3://b/raw --format fakeavceleb \\\n"
        "    --out s3://b/datasets/x --jobs 4 && mmdeepfake-evaluate --model m --data d\n"
        "```\n"
    )
    (bad, good) = doc_commands(doc)
    assert (bad.where, bad.command, good.command) == ("walk.md:3", "prepare", "evaluate")
    assert "unrecognized arguments: --jobs 4" in parse_error(bad.command, bad.args)
    assert parse_error(good.command, good.args) is None
