"""Mutation testing of the core modules with mutmut, one module at a time.

    python scripts/mutate.py                 # every core module
    python scripts/mutate.py fusion metrics  # some of them
    python scripts/mutate.py --list          # the modules and their test selections

Each module runs in its own scratch folder, ``build/mutate/<module>/``, holding a copy of
``src/`` and ``tests/`` and a ``pyproject.toml`` whose ``[tool.mutmut]`` table mutates only that
module and runs only the test files that exercise it: mutmut then narrows each mutant further to
the tests that call the mutated function. One worker (``--max-children 1``) at low priority,
because a laptop or a 2-core runner has little to spare. Survivors that are equivalent or
accepted are listed in ``docs/testing.md``; the kill rate is printed twice, over every mutant
and over the non-equivalent ones (the accepted list taken out).

A mutant counts as killed when a test fails, errors or times out on it; a mutant that no
selected test reaches ("no tests") counts as a survivor.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / "build" / "mutate"
ACCEPTED_DOC = ROOT / "docs" / "testing.md"
# mutmut's own exit-code vocabulary (mutmut.stats.status_by_exit_code), folded into three verdicts.
KILLED_CODES = {1, 3, 36, 24, -24, 152, 255, -9, -11}
NO_TESTS_CODES = {33, 5}


@dataclass(frozen=True)
class Target:
    """A module to mutate, the test files that check it, and which functions to mutate."""

    files: tuple[str, ...]  # globs under src/, as mutmut's only_mutate sees them
    tests: tuple[str, ...]  # test files (missing ones are left out, so old checkouts still run)
    names: tuple[str, ...] = ()  # mutant-name globs; empty: every function of the files
    marks: str = ""  # a pytest -m expression that narrows the tests further; empty: all of them


# Constructors are left out: their mutants change a default width or dropout that every test
# passes explicitly, or build a layer the forward pass then checks by shape.
FUNCTIONS = ("*.x_*", "*ǁforward__mutmut_*", "*ǁunimodal_logits__mutmut_*")

TARGETS: dict[str, Target] = {
    "features": Target(
        ("src/mmdeepfake/media/features.py",),
        (
            "tests/test_media_features.py",
            "tests/test_features_values.py",
            "tests/test_properties.py",
            "tests/test_core_values.py",
        ),
        FUNCTIONS,
    ),
    # Face detection: the box arithmetic (IoU, NMS, squaring, regression) and the final
    # suppression of the cascade. The networks' layers are left out.
    "faces": Target(
        ("src/mmdeepfake/media/faces.py",),
        (
            "tests/test_media_faces.py",
            "tests/test_faces_values.py",
            "tests/test_properties.py",
            "tests/test_core_values.py",
        ),
        (
            "mmdeepfake.media.faces.x_box_iou__*",
            "mmdeepfake.media.faces.x_nms__*",
            "mmdeepfake.media.faces.x__square__*",
            "mmdeepfake.media.faces.x__regress__*",
            "mmdeepfake.media.faces.xǁFaceDetectorǁ_verify__*",
        ),
    ),
    "fusion": Target(
        ("src/mmdeepfake/fusion/*.py",),
        (
            "tests/test_fusion.py",
            "tests/test_model.py",
            "tests/test_core_values.py",
            "tests/test_fusion_through_predict.py",
            "tests/test_fusion_values.py",
        ),
        FUNCTIONS,
    ),
    "model": Target(
        ("src/mmdeepfake/model.py",),
        ("tests/test_model.py", "tests/test_core_values.py"),
        ("*ǁfuse__mutmut_*", "*ǁforward__mutmut_*", "*ǁencode_*"),
    ),
    # The pipeline's scoring: fused logits (or one head's) to the Prediction a user reads,
    # and the verdict (threshold, abstention, unfamiliar input).
    "pipeline": Target(
        ("src/mmdeepfake/pipeline.py",),
        (
            "tests/test_core_values.py",
            "tests/test_pipeline.py",
            "tests/test_single_modality.py",
            "tests/test_domain_guard.py",
            "tests/test_prediction_fields.py",
        ),
        (
            "mmdeepfake.pipeline.xǁDetectionPipelineǁ_score*",
            "mmdeepfake.pipeline.xǁDetectionPipelineǁ_verdict__*",
        ),
        # Every prediction reaches these methods, so each mutant would otherwise also run the
        # demo server, the CLI subprocesses and a training run (about 30 s of the 40 s).
        marks="not slow",
    ),
    "metrics": Target(
        ("src/mmdeepfake/metrics.py",),
        (
            "tests/test_evaluate_metrics.py",
            "tests/test_metrics_values.py",
            "tests/test_properties.py",
            "tests/test_core_values.py",
        ),
    ),
    "calibration": Target(
        ("src/mmdeepfake/calibration.py",),
        (
            "tests/test_evaluate_metrics.py",
            "tests/test_calibration_values.py",
            "tests/test_properties.py",
            "tests/test_core_values.py",
        ),
    ),
    "losses": Target(
        ("src/mmdeepfake/losses.py",),
        ("tests/test_model.py", "tests/test_core_values.py"),
    ),
}


def accepted_survivors() -> set[str]:
    """Mutant names listed in docs/testing.md as equivalent or accepted."""
    if not ACCEPTED_DOC.is_file():
        return set()
    return set(re.findall(r"`(mmdeepfake\.[^`\s]+__mutmut_\d+)`", ACCEPTED_DOC.read_text()))


def prepare(name: str, target: Target) -> tuple[Path, list[str]]:
    """A fresh scratch folder with src/, tests/, demos/, scripts/ and a mutmut config for one
    module."""
    work = SCRATCH / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    shutil.copytree(ROOT / "src", work / "src", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    # The pipeline's tests drive the demo's handlers and run scripts, which live beside it.
    for folder in ("demos", "scripts"):
        shutil.copytree(ROOT / folder, work / folder, ignore=ignore)
    tests = [t for t in target.tests if (ROOT / t).is_file()]
    marks = ["-m", target.marks] if target.marks else []
    pytest_config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    ini = pytest_config["ini_options"]
    config = "\n".join(
        [
            "[tool.mutmut]",
            f"only_mutate = {json.dumps(list(target.files))}",
            f"pytest_add_cli_args_test_selection = {json.dumps(tests)}",
            # -x: the first failing test kills the mutant; no cache: nothing leaks between runs.
            "pytest_add_cli_args = "
            + json.dumps(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *marks]),
            # torch is not fork-safe once it has run: fork workers from a clean server process.
            'process_isolation = "forkserver"',
            "use_git_change_detection = false",
            'also_copy = ["demos", "scripts"]',
            "",
            "[tool.pytest.ini_options]",
            f"testpaths = {json.dumps(ini['testpaths'])}",
            f"markers = {json.dumps(ini['markers'])}",
            f"filterwarnings = {json.dumps(ini['filterwarnings'])}",
            "timeout = 300",
            "",
        ]
    )
    (work / "pyproject.toml").write_text(config)
    return work, tests


def verdicts(work: Path, target: Target) -> dict[str, int | None]:
    """Exit code of every mutant of the target (None: not run), from mutmut's .meta files."""
    codes: dict[str, int | None] = {}
    for meta in sorted((work / "mutants" / "src").rglob("*.meta")):
        data = json.loads(meta.read_text())
        for key, code in data.get("exit_code_by_key", {}).items():
            if not target.names or any(fnmatch(key, pattern) for pattern in target.names):
                codes[key] = code
    return codes


def run_module(
    name: str, target: Target, accepted: set[str], show: bool, only: list[str] | None = None
) -> dict[str, object]:
    """Mutate one module; ``only`` re-runs just these mutants (the others count as killed)."""
    work, tests = prepare(name, target)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CI")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1")
    mutmut = Path(sys.executable).with_name("mutmut")
    names = only if only is not None else list(target.names)
    command = ["nice", "-n", "10", str(mutmut), "run", "--max-children", "1", *names]
    started = time.monotonic()
    log = work / "mutmut.log"
    with log.open("w") as out:
        rc = subprocess.run(
            command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    seconds = time.monotonic() - started
    codes = verdicts(work, target)
    if only is not None:
        codes = {k: c for k, c in codes.items() if k in only}
    if rc != 0 or not codes:
        tail = log.read_text()[-3000:]
        raise SystemExit(f"mutmut failed on {name} (exit {rc}); the end of {log}:\n{tail}")
    killed = sorted(k for k, c in codes.items() if c in KILLED_CODES)
    survived = sorted(k for k in codes if k not in killed)
    counted = [k for k in codes if k not in accepted]
    killed_counted = [k for k in killed if k not in accepted]
    unexplained = [k for k in survived if k not in accepted]
    if show and unexplained:
        for key in unexplained:
            diff = subprocess.run(
                [str(mutmut), "show", key],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            print(diff)
    return {
        "module": name,
        "mutants": len(codes),
        "killed": len(killed),
        "survived": len(survived),
        "no_tests": sum(1 for c in codes.values() if c in NO_TESTS_CODES),
        "accepted": len(codes) - len(counted),
        "kill_rate": len(killed) / len(codes),
        "kill_rate_non_equivalent": len(killed_counted) / len(counted) if counted else 1.0,
        "survivors": survived,
        "unexplained_survivors": unexplained,
        "tests": tests,
        "seconds": round(seconds, 1),
    }


def _merge(before: dict, rerun: dict, accepted: set[str]) -> dict:
    """Totals of an earlier full run, with its survivors replaced by their re-run verdicts."""
    survived = list(rerun["survivors"])
    total = before["mutants"]
    killed = total - len(survived)
    counted = total - sum(1 for k in survived if k in accepted)
    unexplained = [k for k in survived if k not in accepted]
    return {
        **rerun,
        "mutants": total,
        "killed": killed,
        "survived": len(survived),
        "accepted": total - counted,
        "kill_rate": killed / total,
        "kill_rate_non_equivalent": (counted - len(unexplained)) / counted if counted else 1.0,
        "survivors": survived,
        "unexplained_survivors": unexplained,
        "seconds": rerun["seconds"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"any of {', '.join(TARGETS)} (default: all)")
    parser.add_argument(
        "--list", action="store_true", help="print the modules and tests, then stop"
    )
    parser.add_argument(
        "--show", action="store_true", help="print the diff of each unexplained survivor"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--survivors-of",
        type=Path,
        metavar="JSON",
        help="re-run only the survivors recorded in an earlier --json file (after adding tests)",
    )
    args = parser.parse_args(argv)
    unknown = [m for m in args.modules if m not in TARGETS]
    if unknown:
        parser.error(f"unknown module(s) {unknown}; choose from {list(TARGETS)}")
    if args.list:
        for name, target in TARGETS.items():
            only = f" (-m {target.marks!r})" if target.marks else ""
            print(f"{name}: {', '.join(target.files)} <- {', '.join(target.tests)}{only}")
        return 0
    accepted = accepted_survivors()
    earlier = {}
    if args.survivors_of:
        earlier = {r["module"]: r for r in json.loads(args.survivors_of.read_text())}
    results = []
    for name in args.modules or list(TARGETS):
        only = None
        if args.survivors_of:
            if name not in earlier:
                print(f"{name}: not in {args.survivors_of}; skipped", flush=True)
                continue
            only = earlier[name]["survivors"]
            if not only:
                print(f"{name}: no survivors to re-run", flush=True)
                continue
        result = run_module(name, TARGETS[name], accepted, args.show, only)
        if only is not None:
            result = _merge(earlier[name], result, accepted)
        results.append(result)
        print(
            f"{name:12s} {result['killed']:4d}/{result['mutants']:<4d} killed "
            f"({100 * result['kill_rate']:5.1f}%), "
            f"non-equivalent {100 * result['kill_rate_non_equivalent']:5.1f}%, "
            f"{result['no_tests']} not reached, {len(result['unexplained_survivors'])} unexplained "
            f"survivor(s), {result['seconds']:.0f} s",
            flush=True,
        )
        for key in result["unexplained_survivors"]:
            print(f"    survived: {key}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
