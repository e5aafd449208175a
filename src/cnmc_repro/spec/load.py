"""Loading the specs of ``benchmarks/``: one YAML file per published table or result, checked strictly.

An unknown key, a missing field or a wrong type stops with the file and key (``strict.build``); the checks
here add what a type cannot say (an id that matches its file, a stage with at least one epoch, ...).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from cnmc_repro.errors import UserError
from cnmc_repro.paths import specs_dir
from cnmc_repro.spec.schema import NOT_SPECS, Spec
from cnmc_repro.spec.strict import SpecError, build, load_yaml


def planned_epochs(spec: Spec) -> list[tuple[int, int]]:
    """(epochs, image size) of every stage a run of ``spec`` fits, for progress and time estimates."""
    r = spec.recipe
    if r is None:
        return []
    if spec.kind == "kfold":
        folds = spec.kfold.trained_folds or spec.kfold.folds
        return [(s.epochs, r.size) for _ in range(folds) for s in r.stages]
    if spec.kind == "bayesian_search":
        b = spec.bayesian
        probes = [(b.probe_epochs, r.size)] * (b.init_points + b.n_iter)
        return probes + [(s.epochs, r.size) for s in b.retrain]
    return [(s.epochs, s.size or r.size) for s in r.stages]


NEEDS = {
    "train": ("recipe",),
    "progressive_resizing": ("recipe",),
    "kfold": ("recipe", "kfold"),
    "bayesian_search": ("recipe", "bayesian"),
    "ensemble": ("ensemble",),
}


def load_spec(path: Path | str) -> Spec:
    path = Path(path)
    spec: Spec = build(Spec, load_yaml(path), path)
    if spec.id != path.stem:
        raise SpecError(f"{path}: id {spec.id!r} must match the file name {path.stem!r}")
    for key in NEEDS[spec.kind]:
        if getattr(spec, key) is None:
            raise SpecError(f"{path}: the required key {key!r} is missing (a {spec.kind} spec needs it)")
    if spec.recipe is not None:
        _check_recipe(spec, path)
    return replace(spec, path=str(path))


def _check_recipe(spec: Spec, path: Path) -> None:
    r = spec.recipe
    if not r.stages:
        raise SpecError(f"{path}: recipe.stages must hold at least one stage")
    stage_names = [s.name for s in r.stages]
    if len(set(stage_names)) != len(stage_names):
        raise SpecError(f"{path}: recipe.stages has two stages with one name")
    for i, s in enumerate(r.stages):
        if s.epochs < 1:
            raise SpecError(f"{path}: recipe.stages[{i}].epochs must be at least 1")
        if s.table is not None and s.table not in spec.published.tables:
            raise SpecError(f"{path}: recipe.stages[{i}].table {s.table!r} is not among published.tables")
    if spec.kind == "progressive_resizing" and any(s.size is None for s in r.stages):
        raise SpecError(f"{path}: every stage of a progressive_resizing spec needs a size")
    if isinstance(r.valid_size, float) and not 0 < r.valid_size < 1:
        raise SpecError(f"{path}: recipe.valid_size as a fraction must lie between 0 and 1")


def spec_files(folder: Path | None = None) -> list[Path]:
    folder = folder or specs_dir()
    return sorted(p for p in folder.glob("*.yaml") if p.name not in NOT_SPECS)


def load_all(folder: Path | None = None) -> dict[str, Spec]:
    specs = {}
    for p in spec_files(folder):
        spec = load_spec(p)
        specs[spec.id] = spec
    for spec in specs.values():
        if spec.ensemble:
            for combo in spec.ensemble.combinations:
                for member in combo:
                    if member not in specs:
                        raise SpecError(
                            f"{spec.path}: ensemble member {member!r} is not a spec in {folder or specs_dir()}"
                        )
    return specs


def resolve_ids(ids: list[str], specs: dict[str, Spec]) -> list[str]:
    """Spec ids from the command line; ``4.1`` or ``table4.1`` finds the spec holding Table 4.1."""
    out = []
    for raw in ids:
        key = raw.lower().removeprefix("table").strip()
        if key in specs:
            out.append(key)
            continue
        owners = [s.id for s in specs.values() if key in s.report.tables]
        if re.fullmatch(r"\d+\.\d+", key) and owners:
            out.append(owners[0])
            continue
        known = ", ".join(sorted(specs))
        raise UserError(f"unknown table or spec {raw!r}; known specs: {known} (or a table number such as 4.7)")
    return list(dict.fromkeys(out))
