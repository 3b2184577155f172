"""The package imports one way: the library core below training and evaluation runs.

Every module under src/mmdeepfake is parsed (imports inside functions count too) and each
import is checked against the layers:

- the core (everything but the parts below) imports none of the upper parts, so
  ``import mmdeepfake`` and ``Detector`` never pull in training or evaluation code;
- ``reports`` (plots, HTML) imports only the core, so both runs can draw with it;
- ``train`` and ``evaluate`` import the core and ``reports``, never each other;
- the ``sweep`` runs training then evaluation, so it sits above both; only ``cli`` (and
  ``python -m mmdeepfake``, which runs it) is above it.

The parser is scripts/import_graph.py's, so the graph it prints is the graph tested here.
"""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

UPPER = ("train", "evaluate", "reports", "sweep", "cli", "__main__")
#: For each upper part, the upper parts it must not import.
FORBIDDEN = {
    "reports": {"train", "evaluate", "sweep", "cli"},
    "train": {"evaluate", "sweep", "cli"},
    "evaluate": {"train", "sweep", "cli"},
    "sweep": {"cli"},
    "cli": {"__main__"},
    "__main__": set(),
}


def _import_graph() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts/import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


graph = _import_graph()


PATHS = sorted((SRC / "mmdeepfake").rglob("*.py"))
MODULES = {graph.module_name(path, SRC): path for path in PATHS}


def violations(module: str, path: Path) -> set[tuple[str, str]]:
    """(module, imported module) pairs of one module's imports that cross a layer upwards."""
    forbidden = FORBIDDEN.get(graph.part_of(module) or "", set(UPPER))
    found = set()
    for target in graph.imported_modules(path, module):
        while target not in MODULES and "." in target:  # a name imported from a module
            target = target.rsplit(".", 1)[0]
        if graph.part_of(target) in forbidden:
            found.add((module, target))
    return found


def test_every_layer_imports_only_downwards():
    found = set().union(*(violations(module, path) for module, path in MODULES.items()))
    assert found == set(), "imports against the layers:\n" + "\n".join(
        f"  {a} imports {b}" for a, b in sorted(found)
    )


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ("detector.py", "def f():\n    from mmdeepfake.train.hub import push_run_model\n"),
        ("metrics.py", "import mmdeepfake.evaluate.evaluator\n"),
        ("reports/plots.py", "from mmdeepfake.train import trainer\n"),
        ("train/fit.py", "def f():\n    from mmdeepfake.evaluate import evaluator\n"),
        ("evaluate/evaluator.py", "from mmdeepfake.sweep import run_sweep\n"),
        ("media/audio.py", "from ..cli import train\n"),
    ],
)
def test_an_added_upward_import_is_found(tmp_path, where, code):
    real = SRC / "mmdeepfake" / where
    module = graph.module_name(real, SRC)
    bad = tmp_path / real.name
    bad.write_text(real.read_text(encoding="utf-8") + "\n\n" + textwrap.dedent(code))
    assert violations(module, bad) - violations(module, real)


def test_relative_imports_resolve_against_their_package(tmp_path):
    package = tmp_path / "mmdeepfake" / "media"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from . import audio\nfrom ..train import fit\n")
    module = graph.module_name(package / "__init__.py", tmp_path)
    assert module == "mmdeepfake.media"
    assert set(graph.imported_modules(package / "__init__.py", module)) == {
        "mmdeepfake.media",
        "mmdeepfake.media.audio",
        "mmdeepfake.train",
        "mmdeepfake.train.fit",
    }


def test_the_moved_modules_keep_their_old_paths():
    import mmdeepfake.evaluate.calibration as old_calibration
    import mmdeepfake.evaluate.metrics as old_metrics

    from mmdeepfake import calibration, metrics
    from mmdeepfake.evaluate import plots as old_plots
    from mmdeepfake.evaluate import report as old_report
    from mmdeepfake.reports import plots, report

    assert (old_metrics, old_calibration, old_plots, old_report) == (
        metrics,
        calibration,
        plots,
        report,
    )
