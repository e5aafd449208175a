"""Regression of the suite's own figures: the smoke profile on the built-in data against a committed baseline.

``tox -e regression`` (and CI) runs ``reproduce all`` (smoke, built-in data, CPU, random weights) and then
``reproduce regression``, which compares seed 0's runs with ``tests/regression/smoke_cpu.json`` in three ways:

- **bands** (any machine): the figures that carry the learned signal (balanced accuracy, accuracy and the mean
  predicted P(ALL) of the validation and test cells, per fold, per ensemble) must lie within a band around the
  baseline. CPU kernels differ between processors in their last bits and training amplifies that, so across
  machines a run differs the way another seed does: each band is the prediction interval for one further run
  from the baseline's N seeds at level :data:`BAND_LEVEL`, m ± t · s · √(1 + 1/N) (``analysis.seeds``), and
  at least ± :data:`MIN_HALF_WIDTH` wide.
- **exact** (any machine): what does not depend on floating point: how many cells of each class each split
  holds, how many epochs, folds, probes and combinations a run has. A swapped label or a lost cell shows here.
- **health** (any machine): every trained spec's validation balanced accuracy is at least :data:`HEALTHY`, well
  above the 0.5 of predicting the majority class, so that a pipeline that stopped learning fails.

Every figure, to the last bit, is kept too: ``--exact`` compares them all (for a rerun on the baseline's
machine), and ``--against DIR`` compares two results folders of one machine figure by figure.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from cnmc_repro.analysis import seeds as S
from cnmc_repro.analysis.metrics import Summary
from cnmc_repro.atomic import write_json_atomic
from cnmc_repro.errors import UserError
from cnmc_repro.paths import project_root
from cnmc_repro.spec.load import load_all
from cnmc_repro.store.folders import Store, load_epochs, load_json
from cnmc_repro.store.record import Predictions, RunRecord

BASELINE = project_root() / "tests" / "regression" / "smoke_cpu.json"
SCHEMA_VERSION = 2
SEEDS = 5  # seeds the bands are derived from
# one thread a run, the runs as Ray tasks: a 2-core machine trains two at once, and a compared run has the run key
# of the baseline's seed 0 (on the baseline's machine, its very figures)
RUN = "python -m reproduce all --profile smoke --device cpu --no-pretrained --threads 1 --executor ray"
COMMAND = f"{RUN} && python -m reproduce regression"
UPDATE = f"{RUN} --seeds {SEEDS} && python -m reproduce regression --update"
BAND_LEVEL = 0.999  # of the prediction interval a band is
MIN_HALF_WIDTH = 0.05  # no band is narrower than ± this (seeds that happen to agree)
HEALTHY = 0.65  # the least validation balanced accuracy of a trained spec's smoke run


def _summary(s: Summary | None) -> dict | None:
    return None if s is None else dataclasses.asdict(s)


def exact_figures(store: Store, run_dir: Path) -> dict[str, Any]:
    """Every figure of one run, without wall-clock times: compared to the last bit on one machine."""
    r = store.record(run_dir)
    return {
        "epochs": [{k: v for k, v in e.items() if k != "seconds"} for e in load_epochs(run_dir)],
        "validation": _summary(r.validation),
        "test": _summary(r.test),
        "folds": [{"validation": _summary(f.validation)} for f in r.folds],
        "probes": [dataclasses.asdict(p) for p in r.probes],
        "ensembles": [{"members": e.members, "test": _summary(e.test)} for e in r.ensembles],
    }


def _signal(prefix: str, s: Summary | None, predictions: Predictions | None) -> dict[str, float]:
    if s is None:
        return {}
    out = {f"{prefix}.balanced_accuracy": s.balanced_accuracy, f"{prefix}.accuracy": s.accuracy}
    if predictions is not None and predictions.prob_all:
        out[f"{prefix}.mean_p_all"] = math.fsum(predictions.prob_all) / len(predictions.prob_all)
    return {k: v for k, v in out.items() if v is not None}


def signal_figures(r: RunRecord) -> dict[str, float]:
    """The figures that carry what a run learned, by name: compared within bands across machines."""
    out = _signal("validation", r.validation, r.predictions.get("validation"))
    out |= _signal("test", r.test, r.predictions.get("test"))
    for f in r.folds:
        out |= _signal(f"fold{f.fold}.validation", f.validation, f.predictions.get("validation"))
    for e in r.ensembles:
        out |= _signal(f"ensemble[{'+'.join(e.members)}].test", e.test, None)
    return out


def _classes(s: Summary | None) -> list[int] | None:
    return None if s is None else [sum(row) for row in s.confusion]  # cells of each true class (ALL, normal)


def structure(store: Store, run_dir: Path) -> dict[str, Any]:
    """What a run holds that does not depend on floating point: the same on every machine."""
    r = store.record(run_dir)
    return {
        "epochs": [(e.get("stage"), e.get("fold"), e.get("probe"), e.get("epoch")) for e in load_epochs(run_dir)],
        "train_cells": r.train_cells,
        "valid_cells": r.valid_cells,
        "validation_classes": _classes(r.validation),
        "test_classes": _classes(r.test),
        "folds": [(f.train_cells, f.valid_cells, _classes(f.validation), f.loss_weights) for f in r.folds],
        "probes": len(r.probes),
        "loss_weights": r.loss_weights,  # computed from the training cells' counts: exact on every machine
        "ensembles": [(e.members, _classes(e.test)) for e in r.ensembles],
    }


def learned(r: RunRecord) -> float | None:
    """How well a trained run learned: its validation balanced accuracy (a k-fold run's mean over its folds);
    None for an ensemble, which trains nothing."""
    if r.kind == "ensemble":
        return None
    if r.folds:
        values = [f.validation.balanced_accuracy for f in r.folds if f.validation]
        return math.fsum(values) / len(values) if values else None
    return r.validation.balanced_accuracy if r.validation else None


def _band(values: list[float], seeds: list[int]) -> dict[str, Any]:
    """The band of one figure; one seed tells nothing of the spread, so its band is unbounded (None)."""
    spread = S.spread(values, seeds)
    half = max(MIN_HALF_WIDTH, S.half_width(spread.sd, spread.n, BAND_LEVEL)) if spread.n > 1 else None
    return {
        "n": spread.n,
        "mean": spread.mean,
        "sd": spread.sd,
        "min": spread.min,
        "max": spread.max,
        "low": None if half is None else spread.mean - half,
        "high": None if half is None else spread.mean + half,
    }


def _seed0_runs(store: Store, profile: str = "smoke") -> dict[str, Path]:
    return {s: p for s in load_all() if (p := store.latest(s, profile, seed=0)) is not None}


def make_baseline(results: Path) -> dict[str, Any]:
    """The baseline of the latest smoke runs in ``results``: seed 0's figures, and bands from every seed of its
    series."""
    store = Store(results)
    runs = _seed0_runs(store)
    if not runs:
        raise UserError(f"no smoke runs of seed 0 in {results}; run first: {RUN} --seeds {SEEDS}")
    exact, structures, bands, seeds_used, learned_by_seed = {}, {}, {}, {}, {}
    for spec_id, run_dir in runs.items():
        series = [store.record(p) for p in store.series(run_dir)]
        exact[spec_id] = exact_figures(store, run_dir)
        structures[spec_id] = structure(store, run_dir)
        seeds_used[spec_id] = [r.seed for r in series]
        learned_by_seed[spec_id] = {r.seed: learned(r) for r in series}
        per_run = [signal_figures(r) for r in series]
        names = [n for n in per_run[0] if all(n in f for f in per_run)]
        bands[spec_id] = {n: _band([f[n] for f in per_run], seeds_used[spec_id]) for n in names}
    env = load_json(next(iter(runs.values())) / "environment.json") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "made_by": UPDATE,
        "compared_by": COMMAND + " (tox -e regression, .ci/run)",
        "machine": {k: env.get(k) for k in ("cpu", "cpu_count", "platform", "libraries")},
        "band_level": BAND_LEVEL,
        "min_half_width": MIN_HALF_WIDTH,
        "healthy": HEALTHY,
        "seeds": seeds_used,
        "note": "Smoke profile on the built-in synthetic data, CPU, random weights. 'bands': the prediction "
        "interval for one further run from the seeds' spread (compared on any machine); 'structure': what "
        "does not depend on floating point (compared exactly on any machine); 'figures': seed 0's every figure "
        "(compared exactly with --exact, on the machine that made it).",
        "bands": bands,
        # each trained spec's validation balanced accuracy per seed: the health floor is judged only for the specs
        # whose every seed reached it (for the others the baseline itself shows that the smoke profile does not
        # make them learn reliably, and ``reproduce regression`` names them)
        "learned": learned_by_seed,
        "structure": structures,
        "figures": exact,
    }


def update(results: Path, baseline: Path | None = None) -> Path:
    baseline = baseline or BASELINE
    write_json_atomic(baseline, make_baseline(results))
    return baseline


def read_baseline(baseline: Path | None = None) -> dict[str, Any]:
    baseline = baseline or BASELINE
    if not baseline.is_file():
        raise UserError(f"no regression baseline at {baseline}; make one with: {UPDATE}")
    base = load_json(baseline)
    if not isinstance(base, dict) or base.get("schema_version") != SCHEMA_VERSION:
        raise UserError(
            f"regression baseline {baseline} is not a baseline of schema {SCHEMA_VERSION}; make it again with: {UPDATE}"
        )
    return base


@dataclasses.dataclass
class Check:
    """The outcome of ``reproduce regression``: failures by kind, and what was compared."""

    specs: list[str]
    outside_bands: list[str]
    structure: list[str]
    unhealthy: list[str]
    exact: list[str]  # figures that differ in any bit (a failure only with --exact)
    unreliable: list[str] = dataclasses.field(default_factory=list)  # below the floor, as a baseline seed was

    @property
    def failures(self) -> list[str]:
        return self.outside_bands + self.structure + self.unhealthy


def check(results: Path, baseline: Path | None = None) -> Check:
    """Seed 0's latest smoke runs in ``results`` against the baseline (only the specs that have run)."""
    base = read_baseline(baseline)
    store = Store(results)
    runs = _seed0_runs(store)
    if not runs:
        raise UserError(f"no smoke runs of seed 0 in {results}; run first: {RUN}")
    out = Check(sorted(runs), [], [], [], [])
    for spec_id, run_dir in sorted(runs.items()):
        if spec_id not in base["bands"]:
            out.structure.append(f"{spec_id}: not in the baseline")
            continue
        record = store.record(run_dir)
        figures = signal_figures(record)
        for name, band in base["bands"][spec_id].items():
            value = figures.get(name)
            if value is None:
                out.outside_bands.append(f"{spec_id}.{name}: missing now")
            elif band["low"] is not None and not band["low"] <= value <= band["high"]:
                out.outside_bands.append(
                    f"{spec_id}.{name}: {value:.4f} outside [{band['low']:.4f}, {band['high']:.4f}] "
                    f"(the baseline's {band['n']} seeds: {band['min']:.4f} to {band['max']:.4f})"
                )
        now = _plain(structure(store, run_dir))
        out.structure += differences(base["structure"][spec_id], now, 0.0, spec_id)
        balanced = learned(record)
        if balanced is not None and balanced < base["healthy"]:
            said = (
                f"{spec_id}: validation balanced accuracy {balanced:.4f} is below {base['healthy']} "
                "(0.5 is the majority class's)"
            )
            seeds = {int(k): v for k, v in base.get("learned", {}).get(spec_id, {}).items() if v is not None}
            if any(v < base["healthy"] for v in seeds.values()):
                below = ", ".join(f"seed {k} {v:.4f}" for k, v in sorted(seeds.items()) if v < base["healthy"])
                out.unreliable.append(f"{said}; so were the baseline's {below}: not judged")
            else:
                out.unhealthy.append(said)
        out.exact += differences(base["figures"].get(spec_id), exact_figures(store, run_dir), 0.0, spec_id)
    return out


def against(results: Path, other: Path) -> list[str]:
    """Every figure of seed 0's latest smoke runs in ``results`` against those in ``other``, exactly (one machine)."""
    a, b = Store(results), Store(other)
    ra, rb = _seed0_runs(a), _seed0_runs(b)
    if not ra or not rb:
        raise UserError(f"no smoke runs of seed 0 in {results if not ra else other}")
    return differences(
        {s: exact_figures(b, p) for s, p in rb.items()}, {s: exact_figures(a, p) for s, p in ra.items()}, 0.0
    )


def _plain(obj: Any) -> Any:
    """Tuples as lists, as the JSON baseline holds them."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def differences(baseline: Any, current: Any, tolerance: float, where: str = "") -> list[str]:
    """Every place where ``current`` differs from ``baseline`` by more than ``tolerance`` (numbers)."""
    if isinstance(baseline, dict) and isinstance(current, dict):
        out = []
        for k in sorted(set(baseline) | set(current)):
            sub = f"{where}.{k}" if where else str(k)
            if k not in current:
                out.append(f"{sub}: missing now")
            elif k not in baseline:
                out.append(f"{sub}: new")
            else:
                out += differences(baseline[k], current[k], tolerance, sub)
        return out
    if isinstance(baseline, list) and isinstance(current, list):
        if len(baseline) != len(current):
            return [f"{where}: {len(baseline)} items in the baseline, {len(current)} now"]
        return [
            d
            for i, (b, c) in enumerate(zip(baseline, current, strict=True))
            for d in differences(b, c, tolerance, f"{where}[{i}]")
        ]
    if isinstance(baseline, float | int) and isinstance(current, float | int) and not isinstance(baseline, bool):
        if math.isclose(baseline, current, rel_tol=0, abs_tol=tolerance) or baseline == current:
            return []
        return [f"{where}: {baseline!r} in the baseline, {current!r} now"]
    return [] if baseline == current else [f"{where}: {baseline!r} in the baseline, {current!r} now"]
