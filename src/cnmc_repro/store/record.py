"""The run record: what one run measured and how it ran, as typed dataclasses (``result.json``).

The experiments return an :class:`Outcome` (the figures); the engine adds who ran what where and stores a
:class:`RunRecord`, the one record that the report, ``show``, ``list``, the regression check and the
ensembles read back. Stored results are raw numbers with a schema version: a record of another version is
not read as this one (:func:`parse`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnmc_repro.analysis.metrics import Summary
from cnmc_repro.errors import UserError
from cnmc_repro.spec.strict import SpecError, build

# 5: the record holds the class weights its loss applied; 4: the training precision; 3: its series key;
# 2: the record is typed and holds the run key and data; 1: the result dict
SCHEMA_VERSION = 5


@dataclass(frozen=True)
class Predictions:
    """Every cell's class probability, in the order evaluated (the ensembles average these)."""

    cells: list[str]  # paths relative to the data folder
    targets: list[int]
    prob_all: list[float]  # P(ALL), rounded to 7 digits


@dataclass(frozen=True)
class LrFind:
    suggestion: float | None  # fastai's valley; None when the loss diverged before it had points to read
    iterations: int


@dataclass(frozen=True)
class Fold:
    """One fold of a k-fold run (section 4.2.4)."""

    fold: int
    train_cells: int
    valid_cells: int
    validation: Summary | None
    test: Summary | None = None  # of this fold's model
    predictions: dict[str, Predictions] = field(default_factory=dict)
    loss_weights: list[float] | None = None  # the class weights of this fold's loss; None: unweighted


@dataclass(frozen=True)
class Probe:
    """One probe of the Bayesian search (Fig 4.12): its hyper-parameters and validation accuracy."""

    index: int
    params: dict[str, float]
    target: float


@dataclass(frozen=True)
class EnsembleResult:
    """One combination of section 4.2.1: the mean of its members' stored probabilities."""

    members: list[str]
    member_runs: list[str]
    test: Summary | None
    validation: Summary | None
    test_cells: int | None = None
    validation_cells: int | None = None


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What an experiment measured: its final figures and, by kind, its folds, probes or ensembles."""

    validation: Summary | None = None
    test: Summary | None = None
    predictions: dict[str, Predictions] = field(default_factory=dict)  # by split: validation, test
    train_cells: int | None = None
    valid_cells: int | None = None
    lr_find: LrFind | None = None
    folds: list[Fold] = field(default_factory=list)
    kfold_summary: dict[str, tuple[float, float]] = field(default_factory=dict)  # mean and sd over folds
    probes: list[Probe] = field(default_factory=list)
    best_probe: Probe | None = None
    ensembles: list[EnsembleResult] = field(default_factory=list)
    best_ensemble: list[str] | None = None  # the members of the combination with the best test accuracy
    # the class weights (ALL, normal) the loss of the evaluated model applied, read from the loss (section 4.2.3);
    # None: unweighted (or, in a record of schema 4 or older, not recorded)
    loss_weights: list[float] | None = None


@dataclass(frozen=True, kw_only=True)
class RunRecord(Outcome):
    """One finished run: its :class:`Outcome` and what ran, on which data, where and for how long."""

    schema_version: int = SCHEMA_VERSION
    run_id: str  # <spec>-<profile>-seed<seed>-<time>, the run folder's name
    run_key: str  # the hash of everything that decides the figures
    series_key: str  # the same hash without the seed: the runs of one recipe that differ only by their seed
    spec: str
    kind: str
    profile: str
    seed: int
    device: str
    precision: str  # fp32, or bf16 (autocast)
    pretrained: bool
    synthetic: bool
    data_root: str
    data_fingerprint: str
    seconds: float  # the whole run
    prepare_seconds: float = 0.0  # of which reading or preparing cells
    peak_gpu_memory_bytes: int | None = None

    @classmethod
    def of(cls, outcome: Outcome, **header: Any) -> RunRecord:
        return cls(**{f.name: getattr(outcome, f.name) for f in dataclasses.fields(Outcome)}, **header)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse(data: Any, path: Path | str) -> RunRecord:
    """A stored record, checked: one sentence naming the file when it is not a record of this schema."""
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a run record (not a JSON object); delete that run folder or rerun it")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise UserError(
            f"{path} was written by {'a newer' if newer else 'an older'} version of the suite (record schema "
            f"{version}, this one reads {SCHEMA_VERSION}); "
            + ("upgrade the suite to read it" if newer else "run the spec again (python -m reproduce run ...)")
        )
    return from_json(RunRecord, data, path)


def from_json(cls: type, data: Any, where: Path | str) -> Any:
    """A record (or part of one, such as a finished fold) from its JSON, checked like a spec."""
    try:
        return build(cls, data, where)
    except SpecError as e:
        raise UserError(f"{e} (a damaged run record; delete that run folder or rerun it)") from None


def upgrade(data: Any, meta: dict[str, Any]) -> Any:
    """A stored record of an older schema as this one (``meta``: the run's ``spec.json``); others as they are."""
    if isinstance(data, dict) and data.get("schema_version") == 1:
        data = upgrade_v1(data, meta)
    if isinstance(data, dict) and data.get("schema_version") == 2:
        data = upgrade_v2(data)
    if isinstance(data, dict) and data.get("schema_version") == 3:
        data = upgrade_v3(data)
    if isinstance(data, dict) and data.get("schema_version") == 4:
        data = data | {"schema_version": 5}  # the loss's class weights were not recorded: None
    return data


def upgrade_v1(result: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """A record of schema 1 (the result dict, with the run key and data in ``spec.json``) as schema 2."""
    out = {k: v for k, v in result.items() if k != "best"}
    best = result.get("best")
    if result.get("kind") == "bayesian_search":
        out["best_probe"] = best
    elif result.get("kind") == "ensemble":
        out["best_ensemble"] = best["members"] if best else None
    data = meta.get("data") or {}
    out.update(
        schema_version=2,
        run_key=meta.get("run_key", ""),
        data_root=data.get("root", ""),
        data_fingerprint=data.get("fingerprint", ""),
    )
    out.setdefault("run_id", "")
    return out


def upgrade_v2(record: dict[str, Any]) -> dict[str, Any]:
    """A record of schema 2 as schema 3. Its series key cannot be computed again (the key's parts were not
    stored), so the run is a series of its own: the record's run key, marked as such."""
    return record | {"schema_version": 3, "series_key": f"run-{record.get('run_key', '')}"}


def upgrade_v3(record: dict[str, Any]) -> dict[str, Any]:
    """A record of schema 3 as schema 4: its precision is the one the suite trained in then, bf16 autocast on
    a GPU and float32 on a CPU."""
    device = str(record.get("device", ""))
    return record | {"schema_version": 4, "precision": "bf16" if device.startswith("cuda") else "fp32"}
