"""The finished runs a report or ``show`` reads: the latest run of every spec, in the report's order."""

from __future__ import annotations

import re
from pathlib import Path

from cnmc_repro.spec.schema import Spec
from cnmc_repro.store.folders import Store, StoredRun


def collect_runs(results_dir: Path, specs: dict[str, Spec], profile: str | None) -> dict[str, StoredRun | None]:
    """The latest finished run of every spec (None where there is none); nothing is created on disk."""
    store = Store(results_dir)
    latest = {sid: store.latest(sid, profile) for sid in specs}
    return {sid: store.load(run_dir) if run_dir else None for sid, run_dir in latest.items()}


def report_order(specs: dict[str, Spec]) -> list[str]:
    """Specs in the order of chapter 4 (section 4.1.1 to 4.2.5); an ensemble after its members' section."""

    def key(sid: str) -> tuple:
        spec = specs[sid]
        section = tuple(int(p) for p in re.findall(r"\d+", spec.report.section))
        return (section, spec.kind == "ensemble", sid)

    return sorted(specs, key=key)
