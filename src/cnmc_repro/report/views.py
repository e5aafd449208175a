"""What the report shows, as plain numbers: one view per spec (its printed tables epoch by epoch against the
mean ± sd of its runs, confusion matrices, the learning-rate finder, Table 4.5, Fig 4.12, the ensembles), the
k-fold variants side by side, the summary of every published figure against the spread of its runs
(``compare``, ``seeds``), the provenance and the audit, and ``report.json``'s document. The templates format
it; ``plots`` draws its figures."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cnmc_repro.analysis.audit import Agreement, BetaState, table_key_order
from cnmc_repro.analysis.compare import COLUMNS, Comparison, compare, stage_epochs, table_rows
from cnmc_repro.analysis.seeds import LEVEL, MIN_RUNS, Verdict, spread
from cnmc_repro.report.plots import Figures, plot_confusions, plot_table
from cnmc_repro.report.runs import report_order
from cnmc_repro.report.sections import (
    augmentation_view,
    bayesian_view,
    ensemble_view,
    kfold_view,
    lr_find_view,
    schedule_view,
)
from cnmc_repro.spec.schema import PublishedTable, Spec
from cnmc_repro.store.folders import Series, StoredRun

REPORT_SCHEMA_VERSION = 1  # of report.json


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
    matrix = as_all_normal(last, positive)
    return {
        "matrix": matrix,
        "rates": _rates(matrix),
        "epoch": finding["rows"] - 1,
        "positive": positive,
        "audit_class": finding.get("positive_class"),
        "n": finding.get("valid_size"),
        "beta": finding.get("beta"),
        "positives": finding.get("positives") or (shared or {}).get("positives"),
        "basis": basis,
    }


def _rates(matrix: list[list[float]]) -> dict[str, float | None]:
    """ALL recall (sensitivity) and specificity of a matrix [[ALL->ALL, ALL->normal], [normal->ALL, ...]]."""
    (tp, fn), (fp, tn) = matrix
    return {"sensitivity": tp / (tp + fn) if tp + fn else None, "specificity": tn / (tn + fp) if tn + fp else None}


def reproduced_confusion(spec: Spec, table: PublishedTable, series: Series | None) -> dict[str, Any] | None:
    """The runs' validation confusion matrices at their end (of the table's fold for k-fold), summed over
    the seeds and as the per-seed mean, with their rates, and after which stage."""
    if series is None:
        return None
    summaries = []
    for run in series.runs:
        record = run.record
        if table.fold is not None:
            summary = next((f.validation for f in record.folds if f.fold == table.fold), None)
        else:
            summary = record.validation
        if summary is not None:
            summaries.append((record.seed, summary))
    if not summaries:
        return None
    n = len(summaries)
    total = [[sum(s.confusion[i][j] for _, s in summaries) for j in range(2)] for i in range(2)]
    seed_rates = [(seed, _rates(s.confusion)) for seed, s in summaries]
    per_seed = {}
    for rate in ("sensitivity", "specificity"):
        known = [(seed, r[rate]) for seed, r in seed_rates if r[rate] is not None]
        per_seed[rate] = spread([v for _, v in known], [seed for seed, _ in known])
    stages = spec.bayesian.retrain if spec.kind == "bayesian_search" and spec.bayesian else spec.recipe.stages
    return {
        "n": n,
        "seeds": [seed for seed, _ in summaries],
        "matrix": total,  # summed over the seeds
        "rates": _rates(total),
        "mean_matrix": [[v / n for v in row] for row in total],
        "seed_rates": per_seed,  # the spread of each seed's rates
        "cells": sum(s.cells for _, s in summaries),
        "stage": stages[-1].name if stages else None,
        "fold": table.fold,
    }


# ----------------------------------------------------------------------------------------------------- views per spec


def table_view(
    spec: Spec, key: str, table: PublishedTable, series: Series | None, findings: dict, figures: Figures
) -> dict:
    """One printed table (Tables 4.1-4.4, 4.6-4.14): the published epochs beside the mean ± sd of the runs,
    a plot of the published curve over the runs' mean and band, and the confusion matrices."""
    runs = series.runs if series else []
    rows = table_rows(table, runs)
    published = published_confusion(key, spec, findings["tables"].get(key))
    reproduced = reproduced_confusion(spec, table, series)
    view = {
        "key": key,
        "table": table,
        "columns": [c for c in COLUMNS if c in table.columns],
        "tolerance": {
            "accuracy": spec.tolerance.accuracy,
            "error_rate": spec.tolerance.accuracy,
            "f_beta": spec.tolerance.f_beta,
        },
        "synthetic": bool(series and series.synthetic),
        "has_time": "time" in table.columns,
        "rows": rows,
        "n": len(runs),
        "ran_epochs": any(stage_epochs(table, r.epochs) for r in runs),
        "published_confusion": published,
        "reproduced_confusion": reproduced,
        "curves": figures.add(f"{spec.id}-table-{key}-curves", plot_table(key, table, rows, len(runs))),
        "confusion_image": None,
    }
    panels = []
    if published["matrix"] is not None:
        panels.append(
            (f"published Table {key}, epoch {published['epoch']}\n(reconstructed by the audit)", published["matrix"])
        )
    if reproduced is not None:
        where = f"after stage {reproduced['stage']}" + (f" of fold {table.fold}" if table.fold is not None else "")
        if reproduced["n"] == 1:
            panels.append((f"reproduced, validation, seed {reproduced['seeds'][0]}\n{where}", reproduced["matrix"]))
        else:
            n = reproduced["n"]
            panels.append((f"reproduced, validation, summed\nover {n} seeds, {where}", reproduced["matrix"]))
            panels.append((f"reproduced, validation, mean\nper seed ({n} seeds)", reproduced["mean_matrix"]))
    if panels:
        view["confusion_image"] = figures.add(f"{spec.id}-table-{key}-confusion", plot_confusions(panels))
    return view


def spec_view(spec: Spec, series: Series | None, findings: dict, figures: Figures) -> dict:
    """Everything the report shows of one spec."""
    tables = sorted(spec.published.tables.items(), key=lambda kv: table_key_order(kv[0]))
    latest = series.latest if series else None
    return {
        "spec": spec,
        "run": run_info(latest) if latest else None,
        "series": series_info(series) if series else None,
        "splits": [
            (split, run.record.seed, summary)
            for run in (series.runs if series else [])
            for split, summary in (("validation", run.record.validation), ("test", run.record.test))
            if summary is not None
        ],
        "notes": [*spec.notes, *spec.published.notes],
        "lr_find": lr_find_view(spec, latest, figures),
        "tables": [table_view(spec, key, table, series, findings, figures) for key, table in tables],
        "schedule": schedule_view(spec, latest),
        "bayesian": bayesian_view(spec, latest, findings, figures),
        "ensemble": ensemble_view(spec, series, figures),
    }


# ------------------------------------------------------------------------------------------------ summary, provenance

VERDICT_ORDER = (
    Verdict.REPRODUCED,
    Verdict.ABOVE,
    Verdict.BELOW,
    Verdict.INCONCLUSIVE,
    Verdict.NOT_COMPARABLE,
    Verdict.NOT_RUN,
)


def comparisons(specs: dict[str, Spec], series: dict[str, Series | None], order: list[str]) -> list[Comparison]:
    """Every figure of every spec against its runs, in the report's order (``compare.compare``)."""
    return [c for sid in order for c in compare(specs[sid], series[sid].runs if series[sid] else [])]


def summary_view(specs: dict[str, Spec], found: list[Comparison], order: list[str]) -> dict[str, Any]:
    """The summary: every figure in a row per spec (one "nothing published" row for a spec without any), the
    count of each verdict over the published figures, and those not reproduced, worst first."""
    rows = []
    for sid in order:
        mine = [c for c in found if c.figure.spec == sid]
        for i, c in enumerate(mine):
            rows.append({"spec": sid, "first": i == 0, "span": len(mine), "c": c})
        if not mine:
            rows.append({"spec": sid, "first": True, "span": 1, "c": None})
    published = [c for c in found if c.figure.published is not None]
    counts = {v: sum(c.verdict is v for c in published) for v in VERDICT_ORDER}
    off = sorted((c for c in published if c.verdict in (Verdict.ABOVE, Verdict.BELOW)), key=lambda c: -c.outside)
    return {"rows": rows, "counts": {v: n for v, n in counts.items() if n}, "not_reproduced": off}


def report_json(found: list[Comparison], profile: str | None, generated: dt.datetime) -> dict[str, Any]:
    """``report.json``: every published figure against its runs, one record each (``Comparison.to_json``)."""
    published = [c for c in found if c.figure.published is not None]
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "generated": generated.isoformat(),
        "profile": profile,
        "rule": {
            "interval": f"mean ± t({1 - (1 - LEVEL) / 2}, n-1) * sd * sqrt(1 + 1/n): the {LEVEL:.0%} prediction "
            "interval for one further run",
            "reproduced": "the published value lies inside [pi_low - half_unit, pi_high + half_unit]",
            "above_below": "the published value lies above or below that",
            "inconclusive": f"fewer than {MIN_RUNS} runs",
            "not_comparable": "the runs read the built-in synthetic data",
            "within_tolerance": "|mean - published| <= tolerance, the spec's stated tolerance",
        },
        "counts": {v.value: sum(c.verdict is v for c in published) for v in VERDICT_ORDER},
        "figures": [c.to_json() for c in published],
    }


def _distinct(values) -> list:
    out = []
    for v in values:
        if v is not None and v not in out:
            out.append(v)
    return out


def series_info(series: Series) -> dict[str, Any]:
    """What the templates say about the runs of a spec: how many seeds, which, and their time."""
    return {
        "n": len(series.runs),
        "seeds": series.seeds,
        "ids": [r.dir.name for r in series.runs],
        "seconds": sum(r.record.seconds for r in series.runs),
    }


def run_info(run: StoredRun) -> dict[str, Any]:
    """What the templates say about one run."""
    r = run.record
    return {
        "id": run.dir.name,
        "profile": r.profile,
        "seed": r.seed,
        "device": r.device,
        "precision": r.precision,
        "gpu": run.env.get("gpu"),
        "seconds": r.seconds,
        "pretrained": r.pretrained,
        "synthetic": r.synthetic,
        "finished": run.finished,
        "train_cells": r.train_cells,
        "valid_cells": r.valid_cells,
    }


def provenance(series: dict[str, Series | None], profile: str | None) -> dict[str, Any]:
    """Where the figures come from: data, profile, seeds, devices, libraries, code, dates and time."""
    done = [r for s in series.values() if s is not None for r in s.runs]
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
        "seeds": sorted(_distinct(r.seed for r in records)),
        "devices": _distinct(r.device for r in records),
        "precisions": _distinct(r.precision for r in records),
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
    specs: dict[str, Spec],
    series: dict[str, Series | None],
    findings: dict,
    figures: Figures,
    profile: str | None,
    augmentation: dict | None = None,
) -> dict[str, Any]:
    """Everything the templates need, as plain numbers, texts and image names, and ``report.json``'s
    document (``json``); ``augmentation``: the stored draws of the data section's picture."""
    order = report_order(specs)
    views = [spec_view(specs[sid], series[sid], findings, figures) for sid in order]
    found = comparisons(specs, series, order)
    where = provenance(series, profile)
    return {
        "provenance": where,
        "augmentation": augmentation_view(augmentation, figures),
        "rule": {"level": LEVEL, "min_runs": MIN_RUNS},
        "summary": summary_view(specs, found, order),
        "specs": views,
        "kfold": kfold_view(specs, series, figures),
        "audit": audit_view(findings),
        "json": report_json(found, profile, where["generated"]),
    }
