"""Loading the specs of ``benchmarks/``: one YAML file per published table or result, checked strictly.

An unknown key, a missing field, a wrong type or a number out of its field's range stops with the file and key
(``strict.build``); the checks here add what one field cannot say: an id that matches its file, rates from low
to high, sizes the architecture runs on, printed rows that read as numbers, references to stages, tables, folds
and probes that exist.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from cnmc_repro.errors import UserError
from cnmc_repro.paths import specs_dir
from cnmc_repro.spec.schema import NOT_SPECS, Recipe, Spec, Stage, min_size
from cnmc_repro.spec.strict import SpecError, build, check_range, field_range, load_yaml


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
    if spec.kfold is not None:
        _check_kfold(spec, path)
    if spec.bayesian is not None:
        _check_bayesian(spec, path)
    if spec.ensemble is not None:
        _check_ensemble(spec, path)
    _check_published(spec, path)
    return replace(spec, path=str(path))


def _check_stages(stages: list[Stage], key: str, spec: Spec, path: Path) -> None:
    """What the field ranges cannot say of a list of stages: one name each, rates from low to high, sizes the
    architecture runs on, published tables that exist."""
    arch = spec.recipe.arch
    if not stages:
        raise SpecError(f"{path}: {key} must hold at least one stage")
    for i, s in enumerate(stages):
        if s.name in [t.name for t in stages[:i]]:
            raise SpecError(f"{path}: {key}[{i}].name {s.name!r} is the name of an earlier stage")
        if isinstance(s.lr, tuple) and not s.lr[0] < s.lr[1]:
            raise SpecError(f"{path}: {key}[{i}].lr is {list(s.lr)}; the first rate must be below the second")
        if s.size is not None and s.size < min_size(arch):
            raise SpecError(f"{path}: {key}[{i}].size is {s.size}; {arch} needs images of at least {min_size(arch)} px")
        if s.table is not None and s.table not in spec.published.tables:
            raise SpecError(f"{path}: {key}[{i}].table {s.table!r} is not among published.tables")


def _check_recipe(spec: Spec, path: Path) -> None:
    r = spec.recipe
    _check_stages(r.stages, "recipe.stages", spec, path)
    if r.size < min_size(r.arch):
        raise SpecError(f"{path}: recipe.size is {r.size}; {r.arch} needs images of at least {min_size(r.arch)} px")
    if spec.kind == "progressive_resizing":
        for i, s in enumerate(r.stages):
            if s.size is None:
                raise SpecError(
                    f"{path}: recipe.stages[{i}].size is missing; every stage of progressive resizing needs one"
                )


def _check_kfold(spec: Spec, path: Path) -> None:
    kf = spec.kfold
    if kf.trained_folds is not None and kf.trained_folds > kf.folds:
        raise SpecError(f"{path}: kfold.trained_folds is {kf.trained_folds}; there are only kfold.folds = {kf.folds}")


def _check_bayesian(spec: Spec, path: Path) -> None:
    """The searched hyper-parameters are dp, lr and wd, each within the range of the recipe field it sets."""
    b = spec.bayesian
    fields = {"dp": "dropout", "lr": "lr", "wd": "wd"}
    for name in b.bounds:
        if name not in fields:
            raise SpecError(f"{path}: bayesian.bounds has an unknown key 'bayesian.bounds.{name}' (dp, lr or wd)")
    for name, field_name in fields.items():
        key = f"bayesian.bounds.{name}"
        if name not in b.bounds:
            raise SpecError(f"{path}: the required key {key!r} is missing")
        bound = b.bounds[name]
        owner = Stage if name == "lr" else Recipe
        for end in ("low", "high"):
            check_range(field_range(owner, field_name), getattr(bound, end), path, f"{key}.{end}")
        if not bound.low < bound.high:
            raise SpecError(f"{path}: {key}.low is {bound.low}; it must be below {key}.high ({bound.high})")
    if b.init_points + b.n_iter < 1:
        raise SpecError(f"{path}: bayesian.init_points and bayesian.n_iter are both 0; the search needs a probe")
    _check_stages(b.retrain, "bayesian.retrain", spec, path)


def _check_ensemble(spec: Spec, path: Path) -> None:
    combos = spec.ensemble.combinations
    if not combos:
        raise SpecError(f"{path}: ensemble.combinations must hold at least one combination")
    for i, combo in enumerate(combos):
        if not combo:
            raise SpecError(f"{path}: ensemble.combinations[{i}] must name at least one member spec")


def _check_published(spec: Spec, path: Path) -> None:
    """The printed tables read as numbers, and what they point at (a stage, a fold, a probe) exists."""
    pub = spec.published
    stages = {s.name for s in spec.recipe.stages} if spec.recipe else set()
    stages |= {s.name for s in spec.bayesian.retrain} if spec.bayesian else set()
    for name, t in pub.tables.items():
        key = f"published.tables.{name}"
        if not re.fullmatch(r"\d+\.\d+", name):
            raise SpecError(f"{path}: {key} is not named by its table number as printed, such as '4.1'")
        for i, line in enumerate(t.rows):
            cells = line.split()
            if len(cells) != len(t.columns):
                raise SpecError(
                    f"{path}: {key}.rows[{i}] has {len(cells)} columns, not the {len(t.columns)} of {key}.columns"
                )
            for column, cell in zip(t.columns, cells, strict=True):
                if column != "time" and not _is_number(cell):
                    raise SpecError(f"{path}: {key}.rows[{i}] holds {cell!r} in column {column!r}, not a number")
        if t.stage is not None and t.stage not in stages:
            raise SpecError(f"{path}: {key}.stage {t.stage!r} is not a stage of the recipe")
        if t.fold is not None and (spec.kfold is None or t.fold >= spec.kfold.folds):
            raise SpecError(f"{path}: {key}.fold is {t.fold}; it is not a fold of kfold.folds")
    for i, it in enumerate(pub.bayesian):
        for column in ("target", "dp", "lr", "wd"):
            if not _is_number(getattr(it, column)):
                raise SpecError(f"{path}: published.bayesian[{i}].{column} is {getattr(it, column)!r}, not a number")
    if pub.bayesian_best is not None and pub.bayesian_best not in [it.index for it in pub.bayesian]:
        raise SpecError(f"{path}: published.bayesian_best is {pub.bayesian_best}; no published.bayesian has that index")
    if pub.test_accuracy is not None and not _is_number(pub.test_accuracy.removesuffix("%")):
        raise SpecError(f"{path}: published.test_accuracy is {pub.test_accuracy!r}, not a percentage such as '75.46%'")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
