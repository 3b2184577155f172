"""Print mmdeepfake's package-level import graph and the size of every module.

An edge ``a -> b`` means some module of the top-level part ``a`` (a subpackage such as
``train`` or a module such as ``detector``) imports something from part ``b``; function-local
imports count, so the graph shows what a module really needs, not only what its header says.
Run it on two checkouts to compare their shapes:

    python scripts/import_graph.py                      # this checkout's src/
    python scripts/import_graph.py --src ../other/src   # another one
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "mmdeepfake"


def module_name(path: Path, src: Path) -> str:
    """``src/mmdeepfake/train/config.py`` -> ``mmdeepfake.train.config``."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str) -> Iterator[str]:
    """Every mmdeepfake module ``path`` imports, at any depth of its code."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def part_of(module: str) -> str | None:
    """The top-level part of an mmdeepfake module (``mmdeepfake.train.hub`` -> ``train``)."""
    parts = module.split(".")
    if parts[0] != PACKAGE or len(parts) < 2:
        return None
    return parts[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--src",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "src",
        help="the src/ folder that holds the mmdeepfake package",
    )
    src = parser.parse_args().src.resolve()
    files = sorted((src / PACKAGE).rglob("*.py"))
    parts = {p for f in files if (p := part_of(module_name(f, src))) is not None}
    edges: Counter[tuple[str, str]] = Counter()
    sizes: dict[str, int] = {}
    for path in files:
        module = module_name(path, src)
        sizes[module] = len(path.read_text(encoding="utf-8").splitlines())
        source = part_of(module) or PACKAGE
        targets = {p for t in imported_modules(path, module) if (p := part_of(t)) in parts}
        for target in sorted(targets - {source}):
            edges[(source, target)] += 1
    print(f"import graph of {src / PACKAGE} (a -> b: modules of a importing b)")
    for (a, b), count in sorted(edges.items()):
        print(f"  {a:<16} -> {b:<16} {count} module(s)")
    print(f"\nmodules by size ({len(sizes)} modules, {sum(sizes.values())} lines)")
    for module, lines in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {lines:>5}  {module}")


if __name__ == "__main__":
    main()
