"""The report's sections beyond the printed tables: the learning-rate finder (Figs 4.1, 4.3, 4.5, 4.6),
Table 4.5's schedule, the Bayesian search (Fig 4.12), the k-fold variants side by side (Tables 4.9-4.13)
and the ensembles (section 4.2.1), as plain numbers with their figures."""

from __future__ import annotations

import dataclasses

from cnmc_repro.analysis.audit import table_key_order
from cnmc_repro.analysis.compare import percent, verdict
from cnmc_repro.analysis.metrics import mean_std
from cnmc_repro.report.plots import Figures, plot_bayesian, plot_ensembles, plot_kfold, plot_lr_find
from cnmc_repro.report.runs import report_order
from cnmc_repro.spec.schema import Spec
from cnmc_repro.store.folders import StoredRun


def lr_find_view(spec: Spec, run: StoredRun | None, figures: Figures) -> dict | None:
    """The learning-rate finder (Figs 4.1, 4.3, 4.5, 4.6): the curve, the report's rate, fastai's suggestion."""
    if spec.recipe is None or not spec.recipe.lr_find:
        return None
    chosen_text = spec.published.lr_chosen
    chosen = float(chosen_text) if chosen_text else None
    curve = run.lr_find if run else None
    view = {"chosen": chosen, "chosen_text": chosen_text, "suggestion": None, "points": 0, "image": None}
    if curve and curve.get("lrs"):
        view["suggestion"] = curve.get("suggestion")
        view["points"] = len(curve["lrs"])
        view["image"] = figures.add(f"{spec.id}-lr-find", plot_lr_find(curve, chosen, chosen_text, view["suggestion"]))
    return view


def schedule_view(spec: Spec, run: StoredRun | None) -> list[dict] | None:
    """Table 4.5 (progressive resizing): epochs per image size as printed, as the spec plans them and as run."""
    if not spec.published.schedule or spec.recipe is None:
        return None
    rows = []
    for size, epochs in sorted(spec.published.schedule.items()):
        stage = next((s for s in spec.recipe.stages if s.size == size), None)
        ran = [e for e in (run.epochs if run else []) if stage and e.get("stage") == stage.name]
        rows.append(
            {
                "size": size,
                "published": epochs,
                "stage": stage.name if stage else None,
                "planned": stage.epochs if stage else None,
                "ran": len(ran) if run else None,
                "run_size": ran[-1].get("size") if ran else None,
                "accuracy": ran[-1].get("accuracy") if ran else None,
            }
        )
    return rows


def bayesian_view(spec: Spec, run: StoredRun | None, findings: dict, figures: Figures) -> dict | None:
    """Fig 4.12: the published probes (with the audit's exact yes/no) beside the reproduced ones."""
    if spec.kind != "bayesian_search":
        return None
    found = {it["index"]: it for it in (findings.get("bayesian") or {}).get("iterations", [])}
    published = [
        {
            "index": it.index,
            "target": float(it.target),
            "params": {k: float(getattr(it, k)) for k in ("dp", "lr", "wd")},
            "exact": found.get(it.index, {}).get("exact"),
            "source": found.get(it.index, {}).get("source"),
        }
        for it in spec.published.bayesian
    ]
    reproduced = [dataclasses.asdict(p) for p in run.record.probes] if run else []
    count = max(len(published), len(reproduced))
    rows = [
        {
            "index": i,
            "published": published[i] if i < len(published) else None,
            "reproduced": reproduced[i] if i < len(reproduced) else None,
        }
        for i in range(count)
    ]
    init_points = spec.bayesian.init_points if spec.bayesian else None
    image = figures.add(f"{spec.id}-probes", plot_bayesian(published, reproduced, init_points)) if count else None
    return {
        "rows": rows,
        "published_best": spec.published.bayesian_best,
        "reproduced_best": run.record.best_probe if run else None,
        "bounds": spec.bayesian.bounds if spec.bayesian else {},
        "init_points": init_points,
        "n_iter": spec.bayesian.n_iter if spec.bayesian else None,
        "image": image,
    }


def kfold_view(specs: dict[str, Spec], runs: dict[str, StoredRun | None], figures: Figures) -> dict | None:
    """Section 4.2.4 (Tables 4.9-4.13): per fold and mean ± std, the published folds beside every k-fold
    variant: weights carried over (kfold), independent folds, subject-grouped folds. The tables print the first
    cycle of each fold, so a variant's accuracy at the end of that cycle is the comparable figure; the end of the
    fold (both cycles) is what its kfold_summary holds."""
    variants = [specs[sid] for sid in report_order(specs) if specs[sid].kind == "kfold"]
    if not variants:
        return None
    printed = {key: t for v in variants for key, t in v.published.tables.items() if t.fold is not None}
    last_rows = {
        t.fold: (key, t.values()[-1]) for key, t in sorted(printed.items(), key=lambda kv: table_key_order(kv[0]))
    }
    folds = max([v.kfold.folds for v in variants] + [len(last_rows)])
    cycle = next(iter(printed.values())).stage if printed else variants[0].recipe.stages[0].name
    rows = []
    for metric in ("accuracy", "f_beta"):
        values = [last_rows[k][1].get(metric) if k in last_rows else None for k in range(folds)]
        rows.append(_kfold_row("published", "the printed tables", f"end of {cycle}", metric, values))
    for spec in variants:
        run = runs.get(spec.id)
        what = ("weights carried over" if spec.kfold.carry_weights else "independent folds") + (
            ", folds of subjects" if spec.kfold.grouping == "subjects" else ", folds of cells"
        )
        if run is None:
            rows.append(_kfold_row(spec.id, what, None, None, [None] * folds, ran=False))
            continue
        by_fold = {f.fold: f.validation for f in run.record.folds}
        cycle_ends = [[e for e in run.epochs if e.get("fold") == k and e.get("stage") == cycle] for k in range(folds)]
        summary = run.record.kfold_summary
        rows.append(
            _kfold_row(
                spec.id, what, f"end of {cycle}", "accuracy", [e[-1].get("accuracy") if e else None for e in cycle_ends]
            )
        )
        for metric in ("accuracy", "f_beta"):
            values = [getattr(by_fold[k], metric) if by_fold.get(k) else None for k in range(folds)]
            rows.append(_kfold_row(spec.id, what, "end of fold", metric, values, summary.get(metric)))
    comparable = [r for r in rows if r["when"] == f"end of {cycle}" and r["metric"] == "accuracy"]
    return {
        "cycle": cycle,
        "folds": folds,
        "tables": [last_rows[k][0] if k in last_rows else None for k in range(folds)],
        "rows": rows,
        "image": figures.add("kfold-folds", plot_kfold(comparable, folds, cycle)),
    }


def _kfold_row(
    label: str, what: str, when: str | None, metric: str | None, values: list, stored: list | None = None, ran=True
) -> dict:
    """One line of the k-fold table: a figure per fold and its mean ± std (the run's kfold_summary if stored)."""
    return {
        "label": label,
        "what": what,
        "when": when,
        "metric": metric,
        "per_fold": values,
        "ran": ran,
        "mean": tuple(stored)
        if stored
        else (mean_std(known) if (known := [v for v in values if v is not None]) else None),
    }


def ensemble_view(spec: Spec, run: StoredRun | None, figures: Figures) -> dict | None:
    """Section 4.2.1: every combination's test accuracy against the published 87%."""
    if spec.kind != "ensemble" or spec.ensemble is None:
        return None
    published = percent(spec.published.test_accuracy)
    stored = {tuple(e.members): e for e in run.record.ensembles} if run else {}
    tolerance = spec.tolerance.test_accuracy
    combos = []
    for members in spec.ensemble.combinations:
        entry = stored.get(tuple(members))
        test = entry.test if entry else None
        accuracy = test.accuracy if test else None
        diff = accuracy - published if accuracy is not None and published is not None else None
        combos.append(
            {
                "members": members,
                "member_runs": entry.member_runs if entry else [],
                "test": test,
                "test_cells": entry.test_cells if entry else None,
                "validation": entry.validation if entry else None,
                "difference": diff,
                "verdict": verdict(diff, tolerance, run.record.synthetic if run else False),
            }
        )
    image = figures.add(f"{spec.id}-test", plot_ensembles(combos, published, tolerance)) if run else None
    return {
        "published": published,
        "tolerance": tolerance,
        "combos": combos,
        "best": run.record.best_ensemble if run else None,
        "image": image,
    }
