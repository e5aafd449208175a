"""The terminal views: ``reproduce show`` (one spec's runs beside the published figures) and ``reproduce list``
(every spec and the seeds of its latest series), rendered from the text templates of ``report_templates/``."""

from __future__ import annotations

from pathlib import Path

from cnmc_repro.analysis.compare import COLUMNS, compare, table_rows
from cnmc_repro.report.format import environment
from cnmc_repro.report.runs import latest_series
from cnmc_repro.spec.load import load_all, resolve_ids
from cnmc_repro.store.folders import Store


def show_text(spec_id: str, results: Path, profile: str | None = None) -> str:
    """``reproduce show``: the series of a spec's latest run (of ``profile``, when given) beside the published
    figures: each table epoch by epoch (mean ± sd over the seeds), then every published figure against the
    spread of the runs, with its verdict."""
    specs = load_all()
    spec = specs[resolve_ids([spec_id], specs)[0]]
    series = latest_series(Store(results), spec.id, profile)
    runs = series.runs if series else []
    tables = [
        {"table": t, "columns": [c for c in COLUMNS if c in t.columns], "rows": table_rows(t, runs)}
        for t in spec.published.tables.values()
    ]
    return (
        environment()
        .get_template("show.txt.j2")
        .render(spec=spec, series=series, tables=tables, summary=compare(spec, runs))
    )


def list_text(results: Path) -> str:
    """``reproduce list``: every spec, what it reproduces, its latest finished run (any profile) and the seeds
    of that run's series."""
    store = Store(results)
    rows = []
    for spec in load_all().values():
        latest = store.latest(spec.id)
        rows.append(
            {
                "spec": spec,
                "reproduces": ", ".join(
                    [f"Table {t}" for t in spec.report.tables] or [f"section {spec.report.section}"]
                ),
                "run": store.record(latest) if latest else None,
                "seeds": [store.record(p).seed for p in store.series(latest)] if latest else [],
            }
        )
    return environment().get_template("list.txt.j2").render(rows=rows)
