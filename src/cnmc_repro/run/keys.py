"""Run keys: a hash of everything that decides a run's figures, so that a finished run is found again.

A key covers the resolved spec, profile, seed, data, device type and the code version. The code version is
the hash of every module a run executes: the modules the experiments import, followed import by import
(lazy imports inside functions included), so that no hand-kept list can miss one. The command line, the
comparison, the audit and the report are not reached from there and do not change a run's key.
"""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path
from typing import Any

from cnmc_repro.data.dataset import Dataset, relative_path

PACKAGE = "cnmc_repro"
ROOT = Path(__file__).resolve().parents[1]  # src/cnmc_repro
# what a run executes: the experiments (and through them trainer, batches, models, data, metrics, ...) and the
# profiles that resize a spec before it runs
RUN_MODULES = ("cnmc_repro.run.experiments", "cnmc_repro.spec.profiles")


def module_file(name: str) -> Path | None:
    """The source file of a module of this package, or None for a name outside it."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    parts = name.split(".")[1:]
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(name: str, path: Path) -> set[str]:
    """The modules of this package that ``path`` (the module ``name``) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {m for m in found if module_file(m) is not None}


def figure_modules(roots: tuple[str, ...] = RUN_MODULES) -> list[str]:
    """Every module of this package reachable by imports from ``roots``, parents included, sorted."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parent = name.rpartition(".")[0]
        if parent.startswith(PACKAGE):
            todo.append(parent)  # a package's __init__ runs before its modules
        todo.extend(_imports(name, module_file(name)))
    return sorted(seen)


def code_version() -> str:
    """A hash of the source of every module a run executes (see :func:`figure_modules`)."""
    h = hashlib.sha256()
    for name in figure_modules():
        h.update(name.encode())
        h.update(module_file(name).read_bytes())
    return h.hexdigest()[:12]


def data_fingerprint(ds: Dataset) -> str:
    """A hash of every cell's path, content, split and label."""
    h = hashlib.sha256()
    for c in sorted(ds.cells, key=lambda c: relative_path(c, ds.root)):
        h.update(f"{relative_path(c, ds.root)}\t{c.sha256}\t{c.split}\t{c.label}\n".encode())
    return h.hexdigest()[:16]


def run_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
