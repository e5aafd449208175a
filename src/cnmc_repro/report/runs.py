"""The finished runs a report or ``show`` reads: for every spec the series of its latest run (the runs of the
same recipe, code and data under every seed stored), in the report's order."""

from __future__ import annotations

import re
from pathlib import Path

from cnmc_repro.spec.schema import Spec
from cnmc_repro.store.folders import Series, Store


def latest_series(store: Store, spec_id: str, profile: str | None) -> Series | None:
    """The series of the latest finished run of a spec (of ``profile``, when given), or None."""
    run_dir = store.latest(spec_id, profile)
    return store.load_series(run_dir) if run_dir else None


def collect_runs(results_dir: Path, specs: dict[str, Spec], profile: str | None) -> dict[str, Series | None]:
    """The series of the latest finished run of every spec (None where there is none); nothing is created on
    disk."""
    store = Store(results_dir)
    return {sid: latest_series(store, sid, profile) for sid in specs}


def report_order(specs: dict[str, Spec]) -> list[str]:
    """Specs in the order of chapter 4 (section 4.1.1 to 4.2.5); an ensemble after its members' section."""

    def key(sid: str) -> tuple:
        spec = specs[sid]
        section = tuple(int(p) for p in re.findall(r"\d+", spec.report.section))
        return (section, spec.kind == "ensemble", sid)

    return sorted(specs, key=key)
