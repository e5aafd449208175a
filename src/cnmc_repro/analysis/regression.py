"""Regression of the suite's own figures: the smoke profile on the built-in data against a committed baseline.

``tox -e regression`` runs ``reproduce all`` (smoke, built-in data, CPU, random weights) and then
``reproduce regression``, which compares every figure of the latest runs with
``tests/regression/smoke_cpu.json``: per-epoch losses and metrics, final validation and test figures,
k-fold folds, Bayesian probes and ensembles. On a CPU the figures repeat exactly, so the default tolerance
is 0: a change that moves a figure is seen, and must be accepted on purpose with
``reproduce regression --update`` (and a commit that says why).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from cnmc_repro.analysis.metrics import SUMMARY_FIGURES, Summary
from cnmc_repro.atomic import write_json_atomic
from cnmc_repro.errors import UserError
from cnmc_repro.paths import project_root
from cnmc_repro.spec.load import load_all
from cnmc_repro.store.folders import Store, load_epochs, load_json

BASELINE = project_root() / "tests" / "regression" / "smoke_cpu.json"
COMMAND = "python -m reproduce all --profile smoke --device cpu --no-pretrained && python -m reproduce regression"
# the summary figures the baseline holds (a selection of metrics.SUMMARY_FIGURES)
SUMMARY_KEYS = ("accuracy", "f_beta", "sensitivity", "specificity", "weighted_f1", "roc_auc", "confusion")
assert set(SUMMARY_KEYS) <= set(SUMMARY_FIGURES)


def _summary(s: Summary | None) -> dict | None:
    return None if s is None else {k: getattr(s, k) for k in SUMMARY_KEYS}


def figures(results: Path, profile: str = "smoke") -> dict[str, Any]:
    """Every figure of the latest run of seed 0 of each spec (the baseline's seed), without wall-clock times."""
    store = Store(results)
    out: dict[str, Any] = {}
    for spec_id in load_all():
        run_dir = store.latest(spec_id, profile, seed=0)
        if run_dir is None:
            continue
        r = store.record(run_dir)
        out[spec_id] = {
            "epochs": [{k: v for k, v in e.items() if k != "seconds"} for e in load_epochs(run_dir)],
            "validation": _summary(r.validation),
            "test": _summary(r.test),
            "folds": [{"validation": _summary(f.validation)} for f in r.folds],
            "probes": [dataclasses.asdict(p) for p in r.probes],
            "ensembles": [{"members": e.members, "test": _summary(e.test)} for e in r.ensembles],
        }
    return out


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


def check(results: Path, baseline: Path = BASELINE) -> tuple[list[str], dict]:
    if not baseline.is_file():
        raise UserError(f"no regression baseline at {baseline}; make one with: python -m reproduce regression --update")
    base = load_json(baseline)
    if base is None:
        raise UserError(f"regression baseline {baseline} is not valid JSON")
    current = figures(results)
    if not current:
        raise UserError(f"no smoke runs in {results}; run first: python -m reproduce all --profile smoke")
    return differences(base["figures"], current, base["tolerance"]), base


def update(results: Path, baseline: Path = BASELINE) -> Path:
    current = figures(results)
    if not current:
        raise UserError(f"no smoke runs in {results}; run first: python -m reproduce all --profile smoke")
    write_json_atomic(
        baseline,
        {
            "made_by": COMMAND.replace("regression", "regression --update"),
            "compared_by": COMMAND + " (tox -e regression)",
            "tolerance": 0.0,
            "note": "Figures of the smoke profile on the built-in synthetic data, CPU, random weights; "
            "compared exactly (tolerance 0).",
            "figures": current,
        },
    )
    return baseline
