"""What the report shows, as plain numbers: one view per spec (its printed tables epoch by epoch, confusion
matrices, the learning-rate finder, Table 4.5, Fig 4.12, the ensembles), the k-fold variants side by side,
the summary, the provenance and the audit. The templates format it; ``plots`` draws its figures."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cnmc_repro.analysis.audit import Agreement, BetaState, table_key_order
from cnmc_repro.analysis.compare import COLUMNS, stage_epochs, summary_rows, table_rows
from cnmc_repro.report.plots import Figures, plot_confusions, plot_table
from cnmc_repro.report.runs import report_order
from cnmc_repro.report.sections import bayesian_view, ensemble_view, kfold_view, lr_find_view, schedule_view
from cnmc_repro.spec.schema import PublishedTable, Spec
from cnmc_repro.store.folders import StoredRun


def as_all_normal(counts: dict[str, int], positive: str) -> list[list[int]]:
    """An audit matrix (TP/FP/FN/TN of the f_beta's positive class) as [[ALL->ALL, ALL->normal],
    [normal->ALL, normal->normal]], rows true, columns predicted, like the runs' confusion matrices."""
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    if positive == "ALL":
        return [[tp, fn], [fp, tn]]
    return [[tn, fp], [fn, tp]]  # positive 'normal': TN are ALL cells called ALL, FN normal cells called ALL


def published_confusion(key: str, spec: Spec, finding: dict | None) -> dict[str, Any]:
    """The confusion matrix of a printed table's last epoch as the audit reconstructs it, or why there is none."""
    if finding is None:
        return {"matrix": None, "why": "the table has no accuracy column"}
    positive = spec.recipe.f_beta.positive if spec.recipe else "normal"
    last, basis = (finding.get("epochs") or [None])[-1], None
    shared = finding.get("epochs_if_shared")
    if last is None and shared:
        last = shared["epochs"][-1]
        basis = f"if the split is Table {shared['table']}'s (P = {shared['positives']})"
    if last is None:
        if BetaState.of(finding) is BetaState.NO_F_BETA_COLUMN:
            why = "the table prints no f_beta, so the errors cannot be split into FP and FN"
        elif finding.get("positives_range"):
            lo, hi = finding["positives_range"]
            why = f"beta = {finding['beta']} leaves the positives P anywhere in {lo}..{hi}: not identifiable"
        else:
            why = finding.get("beta_note") or "not identifiable from the printed figures"
        return {"matrix": None, "why": why}
    return {
        "matrix": as_all_normal(last, positive),
        "epoch": finding["rows"] - 1,
        "positive": positive,
        "audit_class": finding.get("positive_class"),
        "n": finding.get("valid_size"),
        "beta": finding.get("beta"),
        "positives": finding.get("positives") or (shared or {}).get("positives"),
        "basis": basis,
    }


def reproduced_confusion(spec: Spec, table: PublishedTable, run: StoredRun | None) -> dict[str, Any] | None:
    """The run's validation confusion matrix at its end (of the table's fold for k-fold), and after which stage."""
    if run is None:
        return None
    record = run.record
    if table.fold is not None:
        summary = next((f.validation for f in record.folds if f.fold == table.fold), None)
    else:
        summary = record.validation
    if summary is None:
        return None
    stages = spec.bayesian.retrain if spec.kind == "bayesian_search" and spec.bayesian else spec.recipe.stages
    last_stage = stages[-1].name if stages else None
    return {"matrix": summary.confusion, "cells": summary.cells, "stage": last_stage, "fold": table.fold}


# ----------------------------------------------------------------------------------------------------- views per spec


def table_view(
    spec: Spec, key: str, table: PublishedTable, run: StoredRun | None, findings: dict, figures: Figures
) -> dict:
    """One printed table (Tables 4.1-4.4, 4.6-4.14): epochs side by side, a plot and confusion matrices."""
    epochs = run.epochs if run else []
    rows = table_rows(table, epochs)
    published = published_confusion(key, spec, findings["tables"].get(key))
    reproduced = reproduced_confusion(spec, table, run)
    view = {
        "key": key,
        "table": table,
        "columns": [c for c in COLUMNS if c in table.columns],
        "tolerance": {
            "accuracy": spec.tolerance.accuracy,
            "error_rate": spec.tolerance.accuracy,
            "f_beta": spec.tolerance.f_beta,
        },
        "synthetic": bool(run and run.record.synthetic),
        "has_time": "time" in table.columns,
        "rows": rows,
        "ran_epochs": bool(stage_epochs(table, epochs)),
        "published_confusion": published,
        "reproduced_confusion": reproduced,
        "curves": figures.add(f"{spec.id}-table-{key}-curves", plot_table(key, table, rows)),
        "confusion_image": None,
    }
    panels = []
    if published["matrix"] is not None:
        panels.append(
            (f"published Table {key}, epoch {published['epoch']}\n(reconstructed by the audit)", published["matrix"])
        )
    if reproduced is not None:
        fold = f" of fold {table.fold}" if table.fold is not None else ""
        panels.append((f"reproduced, validation\nafter stage {reproduced['stage']}{fold}", reproduced["matrix"]))
    if panels:
        view["confusion_image"] = figures.add(f"{spec.id}-table-{key}-confusion", plot_confusions(panels))
    return view


def spec_view(spec: Spec, run: StoredRun | None, findings: dict, figures: Figures) -> dict:
    """Everything the report shows of one spec."""
    tables = sorted(spec.published.tables.items(), key=lambda kv: table_key_order(kv[0]))
    return {
        "spec": spec,
        "run": run_info(run) if run else None,
        "validation": run.record.validation if run else None,
        "test": run.record.test if run else None,
        "notes": [*spec.notes, *spec.published.notes],
        "lr_find": lr_find_view(spec, run, figures),
        "tables": [table_view(spec, key, table, run, findings, figures) for key, table in tables],
        "schedule": schedule_view(spec, run),
        "bayesian": bayesian_view(spec, run, findings, figures),
        "ensemble": ensemble_view(spec, run, figures),
    }


# ------------------------------------------------------------------------------------------------ summary, provenance


def summary_view(specs: dict[str, Spec], runs: dict[str, StoredRun | None], order: list[str]) -> list[dict]:
    """The summary table: compare.summary_rows of every spec, and one "not run" line for a spec that has no
    published figure and no run."""
    rows = []
    for sid in order:
        run = runs[sid]
        found = summary_rows(
            specs[sid], run.record if run else None, run.epochs if run else [], bool(run and run.record.synthetic)
        )
        if not found:
            found = [
                {
                    "what": "(nothing published)",
                    "published": None,
                    "reproduced": None,
                    "difference": None,
                    "tolerance": None,
                    "verdict": "not run" if run is None else "not published",
                }
            ]
        for i, row in enumerate(found):
            rows.append({**row, "spec": sid, "first": i == 0, "span": len(found)})
    return rows


def _distinct(values) -> list:
    out = []
    for v in values:
        if v is not None and v not in out:
            out.append(v)
    return out


def run_info(run: StoredRun) -> dict[str, Any]:
    """What the templates say about one run."""
    r = run.record
    return {
        "id": run.dir.name,
        "profile": r.profile,
        "seed": r.seed,
        "device": r.device,
        "gpu": run.env.get("gpu"),
        "seconds": r.seconds,
        "pretrained": r.pretrained,
        "synthetic": r.synthetic,
        "finished": run.finished,
        "train_cells": r.train_cells,
        "valid_cells": r.valid_cells,
    }


def provenance(runs: dict[str, StoredRun | None], profile: str | None) -> dict[str, Any]:
    """Where the figures come from: data, profile, seeds, devices, libraries, code, dates and time."""
    done = [r for r in runs.values() if r is not None]
    records = [r.record for r in done]
    libraries: dict[str, list[str]] = {}
    for r in done:
        for name, version in (r.env.get("libraries") or {}).items():
            libraries.setdefault(name, [])
            if version not in libraries[name]:
                libraries[name].append(version)
    commits = _distinct(
        (r.env.get("git_commit") or "unknown") + (" (uncommitted changes)" if r.env.get("git_dirty") else "")
        for r in done
    )
    finished = sorted(r.finished for r in done)
    return {
        "runs": len(done),
        "synthetic": any(r.synthetic for r in records),
        "synthetic_runs": [r.run_id for r in records if r.synthetic],
        "real_runs": [r.run_id for r in records if not r.synthetic],
        "data_roots": _distinct(r.data_root for r in records),
        "fingerprints": _distinct(r.data_fingerprint for r in records),
        "profile_asked": profile,
        "profiles": _distinct(r.profile for r in records),
        "seeds": _distinct(r.seed for r in records),
        "devices": _distinct(r.device for r in records),
        "gpus": _distinct(r.env.get("gpu") for r in done),
        "pretrained": _distinct(r.pretrained for r in records),
        "python": _distinct(r.env.get("python") for r in done),
        "platforms": _distinct(r.env.get("platform") for r in done),
        "libraries": libraries,
        "commits": commits,
        "code_versions": _distinct(r.env.get("code_version") for r in done),
        "first_finished": finished[0] if finished else None,
        "last_finished": finished[-1] if finished else None,
        "seconds": sum(r.seconds for r in records),
        "generated": dt.datetime.now(dt.UTC),
    }


def audit_view(findings: dict) -> dict[str, Any]:
    """The audit's findings, compactly: per table N, beta and P; the Bayesian set-up and which iterations
    bayes_opt proposes again exactly; the test-accuracy fits; the spec fields that disagree."""
    checks = findings.get("spec_checks", [])
    groups = Agreement.group(checks)
    bayes = findings.get("bayesian")
    return {
        "tables": findings.get("tables", {}),
        "kfold": findings.get("kfold", {}),
        "bayesian": bayes,
        "tests": findings.get("test_accuracy", {}),
        "checks": len(checks),
        "agreeing": len(groups[Agreement.AGREES]),
        "disagreeing": groups[Agreement.DISAGREES],
        "undecided": groups[Agreement.UNDECIDABLE],
    }


def build_context(
    specs: dict[str, Spec], runs: dict[str, StoredRun | None], findings: dict, figures: Figures, profile: str | None
) -> dict[str, Any]:
    """Everything the templates need, as plain numbers, texts and image names."""
    order = report_order(specs)
    views = [spec_view(specs[sid], runs[sid], findings, figures) for sid in order]
    summary = summary_view(specs, runs, order)
    verdicts: dict[str, int] = {}
    for row in summary:
        verdicts[row["verdict"]] = verdicts.get(row["verdict"], 0) + 1
    return {
        "provenance": provenance(runs, profile),
        "summary": summary,
        "verdicts": verdicts,
        "specs": views,
        "kfold": kfold_view(specs, runs, figures),
        "audit": audit_view(findings),
    }
