"""The report's sections beyond the printed tables: the learning-rate finder (Figs 4.1, 4.3, 4.5, 4.6),
Table 4.5's schedule, the Bayesian search (Fig 4.12), the k-fold variants side by side (Tables 4.9-4.13)
and the ensembles (section 4.2.1), as plain numbers with their figures. The learning-rate finder, the
schedule and the probes are those of the latest run; the k-fold folds and the ensembles are over the seeds."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

from cnmc_repro.analysis.audit import table_key_order
from cnmc_repro.analysis.compare import Measure, judge, published_figures, spread_over
from cnmc_repro.analysis.metrics import mean_std
from cnmc_repro.report.plots import (
    Figures,
    plot_augmentations,
    plot_bayesian,
    plot_ensembles,
    plot_kfold,
    plot_lr_find,
)
from cnmc_repro.report.runs import report_order
from cnmc_repro.spec.schema import Spec
from cnmc_repro.store.folders import Series, StoredRun
from cnmc_repro.store.record import EnsembleResult


def augmentation_view(draws: dict | None, figures: Figures) -> dict | None:
    """The data section's picture: one training cell and its draws under each augmentation set, as the runs
    stored them (``store.augmentation``); None before any run has."""
    if not draws or "cell" not in draws:
        return None
    sets = {name: images for name, images in draws.items() if name != "cell"}
    image = figures.add("augmentation", plot_augmentations(draws["cell"], sets))
    return {"image": image, "sets": list(sets), "draws": max(len(d) for d in sets.values()), "size": len(draws["cell"])}


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


def kfold_view(specs: dict[str, Spec], series: dict[str, Series | None], figures: Figures) -> dict | None:
    """Section 4.2.4 (Tables 4.9-4.13): per fold and mean ± std over the folds, the published folds beside
    every k-fold variant: weights carried over (kfold), independent folds, subject-grouped folds; a variant
    run under several seeds shows each fold's mean over the seeds. The tables print the first cycle of each
    fold, so a variant's accuracy at the end of that cycle is the comparable figure; the end of the fold (both
    cycles) is what its kfold_summary holds."""
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
        found = series.get(spec.id)
        what = ("weights carried over" if spec.kfold.carry_weights else "independent folds") + (
            ", folds of subjects" if spec.kfold.grouping == "subjects" else ", folds of cells"
        )
        if found is None:
            rows.append(_kfold_row(spec.id, what, None, None, [None] * folds, ran=False))
            continue
        runs = found.runs
        if len(runs) > 1:
            what += f", mean of {len(runs)} seeds per fold"

        cycle_ends = _per_fold(runs, folds, lambda run, k: _stage_end(run, k, cycle))
        rows.append(_kfold_row(spec.id, what, f"end of {cycle}", "accuracy", cycle_ends))
        for metric in ("accuracy", "f_beta"):
            stored = runs[0].record.kfold_summary.get(metric) if len(runs) == 1 else None
            values = _per_fold(runs, folds, lambda run, k, metric=metric: _fold_end(run, k, metric))
            rows.append(_kfold_row(spec.id, what, "end of fold", metric, values, stored))
    comparable = [r for r in rows if r["when"] == f"end of {cycle}" and r["metric"] == "accuracy"]
    return {
        "cycle": cycle,
        "folds": folds,
        "tables": [last_rows[k][0] if k in last_rows else None for k in range(folds)],
        "rows": rows,
        "image": figures.add("kfold-folds", plot_kfold(comparable, folds, cycle)),
    }


def _per_fold(runs: list[StoredRun], folds: int, value) -> list[float | None]:
    """``value(run, fold)`` of each fold, averaged over the runs that hold it."""
    spreads = [spread_over(runs, lambda run, k=k: value(run, k)) for k in range(folds)]
    return [s.mean if s else None for s in spreads]


def _stage_end(run: StoredRun, fold: int, stage: str) -> float | None:
    """The validation accuracy at the end of a stage of a fold."""
    ends = [e for e in run.epochs if e.get("fold") == fold and e.get("stage") == stage]
    return ends[-1].get("accuracy") if ends else None


def _fold_end(run: StoredRun, fold: int, metric: str) -> float | None:
    """A validation figure of a fold's model at the end of the fold."""
    validation = next((f.validation for f in run.record.folds if f.fold == fold), None)
    return getattr(validation, metric) if validation else None


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


def ensemble_view(spec: Spec, series: Series | None, figures: Figures) -> dict | None:
    """Section 4.2.1: every combination's test accuracy over the seeds against the published 87%, with the
    verdict of ``compare``; each seed's ensemble combines the members' runs of its seed."""
    if spec.kind != "ensemble" or spec.ensemble is None:
        return None
    (published,) = [f for f in published_figures(spec) if f.measure is Measure.TEST and f.published is not None]
    runs = series.runs if series else []
    combos = []
    for members in spec.ensemble.combinations:

        def entry(run: StoredRun, members=members) -> EnsembleResult | None:
            return next((e for e in run.record.ensembles if e.members == members), None)

        def test(run: StoredRun, metric: str, entry=entry) -> float | None:
            found = entry(run)
            return getattr(found.test, metric) if found and found.test else None

        figure = replace(published, figure=f"test accuracy of {' + '.join(members)}")
        combos.append(
            {
                "members": members,
                "member_runs": latest.member_runs if series and (latest := entry(series.latest)) else [],
                "test_cells": next((e.test_cells for run in runs if (e := entry(run))), None),
                "comparison": judge(figure, [(run, test(run, "accuracy")) for run in runs]),
                "sensitivity": spread_over(runs, lambda r, test=test: test(r, "sensitivity")),
                "weighted_f1": spread_over(runs, lambda r, test=test: test(r, "weighted_f1")),
                "best_in": [run.record.seed for run in runs if run.record.best_ensemble == members],
            }
        )
    image = None
    if runs:
        image = figures.add(f"{spec.id}-test", plot_ensembles(combos, published.published, published.tolerance))
    return {
        "published": published.published,
        "printed": published.printed[0],
        "tolerance": published.tolerance,
        "combos": combos,
        "n": len(runs),
        "image": image,
    }
