"""The terminal views: ``reproduce show`` (one spec's latest run beside the published figures) and
``reproduce list`` (every spec and its latest run), rendered from the text templates of ``report_templates/``."""

from __future__ import annotations

from pathlib import Path

from cnmc_repro.analysis.compare import COLUMNS, summary_rows, table_rows
from cnmc_repro.report.format import environment
from cnmc_repro.spec.load import load_all, resolve_ids
from cnmc_repro.store.folders import Store


def show_text(spec_id: str, results: Path, profile: str | None = None) -> str:
    """``reproduce show``: the latest run of a spec (of ``profile``, when given) beside the published figures."""
    specs = load_all()
    spec = specs[resolve_ids([spec_id], specs)[0]]
    store = Store(results)
    run_dir = store.latest(spec.id, profile)
    run = store.load(run_dir) if run_dir else None
    epochs = run.epochs if run else []
    tables = [
        {"table": t, "columns": [c for c in COLUMNS if c in t.columns], "rows": table_rows(t, epochs)}
        for t in spec.published.tables.values()
    ]
    summary = summary_rows(spec, run.record if run else None, epochs, bool(run and run.record.synthetic))
    return environment().get_template("show.txt.j2").render(spec=spec, run=run, tables=tables, summary=summary)


def list_text(results: Path) -> str:
    """``reproduce list``: every spec, what it reproduces, and its latest finished run (any profile)."""
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
            }
        )
    return environment().get_template("list.txt.j2").render(rows=rows)
