"""The report: ``python -m reproduce report`` writes ``results/report.html`` and ``results/report.md``.

The report sets the latest finished run of every spec (optionally of one profile) beside the figures the
B.Tech report prints in chapter 4, read top to bottom as:

1. where the figures come from: real C-NMC or the built-in synthetic cells, profile, seed, device, library
   versions, git commit, dates and the time the runs took;
2. a summary: every published result beside the reproduced one with the difference and the verdict
   (:func:`compare.summary_rows`);
3. one section per spec in the report's order: the learning-rate finder (Figs 4.1, 4.3, 4.5, 4.6), each
   printed table epoch by epoch (Tables 4.1-4.4, 4.6-4.14; :func:`compare.table_rows`) with plots and the
   confusion matrices the audit reconstructs, the Bayesian search (Fig 4.12), the k-fold variants side by
   side (Tables 4.9-4.13) and the ensembles (section 4.2.1);
4. the audit's findings (:func:`audit.audit`).

This module gathers plain numbers and draws the figures; the templates in ``report_templates/`` do all the
formatting. ``report.html`` is one self-contained file (CSS inline, images as base64 PNG data URIs);
``report.md`` keeps its images in ``report_files/`` beside it. No torch: the report renders on any machine
that holds the run folders.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cnmc_repro.analysis.audit import audit, table_key_order
from cnmc_repro.analysis.compare import COLUMNS, percent, stage_epochs, summary_rows, table_rows, verdict
from cnmc_repro.atomic import write_atomic, write_text_atomic
from cnmc_repro.paths import project_root
from cnmc_repro.spec.load import load_all
from cnmc_repro.spec.schema import PublishedTable, Spec
from cnmc_repro.store.folders import Store, load_epochs, load_json

TEMPLATES = project_root() / "report_templates"
IMAGES_DIR = "report_files"  # report.md's images, beside it
CLASSES = ("ALL", "normal")  # rows and columns of every confusion matrix: true / predicted, class-index order
PUBLISHED_COLOUR, REPRODUCED_COLOUR = "#1f4e79", "#c55a11"
VARIANT_COLOURS = ("#c55a11", "#2e7d32", "#7b1fa2", "#616161")
COLUMN_COLOURS = {
    "accuracy": "#1f77b4",
    "f_beta": "#2ca02c",
    "error_rate": "#9467bd",
    "train_loss": "#1f77b4",
    "valid_loss": "#d62728",
}
SUMMARY_KEYS = tuple(  # a validation or test summary of metrics.summary
    "cells confusion accuracy error_rate sensitivity specificity precision f1 f_beta weighted_f1 "
    "balanced_accuracy roc_auc".split()
)


# -------------------------------------------------------------------------------------------------------- entry point


def render_report(results_dir: Path, out_dir: Path | None = None, profile: str | None = None) -> tuple[Path, Path]:
    """Render ``report.html`` and ``report.md`` (with ``report_files/*.png``) from the runs in ``results_dir``.

    The latest finished run of each spec is used (only runs of ``profile`` when given); a spec without one
    shows as "not run", and an empty or missing ``results_dir`` still gives a report. Returns the paths of
    the HTML and the Markdown file, both written into ``out_dir`` (default: ``results_dir``).
    """
    results_dir = Path(results_dir)
    out_dir = Path(out_dir) if out_dir is not None else results_dir
    specs = load_all()
    runs = collect_runs(results_dir, specs, profile)
    figures = Figures()
    context = build_context(specs, runs, audit(specs), figures, profile)
    env = _environment()
    html = env.get_template("report.html.j2").render(**context, image=figures.data_uri)
    markdown = env.get_template("report.md.j2").render(**context, image=figures.relative_path)
    figures.write(out_dir / IMAGES_DIR)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    write_text_atomic(html_path, html)
    write_text_atomic(md_path, markdown)
    return html_path, md_path


# --------------------------------------------------------------------------------------------------------------- runs


@dataclass
class Run:
    """One finished run folder, read (every file may be missing or unreadable: then it is empty)."""

    dir: Path
    meta: dict[str, Any]  # spec.json
    env: dict[str, Any]  # environment.json
    result: dict[str, Any]  # result.json
    epochs: list[dict[str, Any]] = field(default_factory=list)
    lr_find: dict[str, Any] | None = None

    @classmethod
    def read(cls, run_dir: Path) -> Run:
        return cls(
            dir=run_dir,
            meta=load_json(run_dir / "spec.json") or {},
            env=load_json(run_dir / "environment.json") or {},
            result=load_json(run_dir / "result.json") or {},
            epochs=load_epochs(run_dir),
            lr_find=load_json(run_dir / "lr_find.json"),
        )

    @property
    def synthetic(self) -> bool:
        data = self.meta.get("data") or {}
        return bool(data.get("synthetic", self.result.get("synthetic", False)))

    @property
    def seconds(self) -> float:
        return float(self.result.get("seconds") or 0.0)

    @property
    def finished(self) -> dt.datetime:
        stamp = (self.dir / "result.json").stat().st_mtime
        return dt.datetime.fromtimestamp(stamp, dt.UTC)

    def info(self) -> dict[str, Any]:
        """What the template says about the run."""
        return {
            "id": self.dir.name,
            "profile": self.meta.get("profile", self.result.get("profile")),
            "seed": self.meta.get("seed", self.result.get("seed")),
            "device": self.result.get("device") or self.env.get("device"),
            "gpu": self.env.get("gpu"),
            "seconds": self.seconds,
            "pretrained": self.meta.get("pretrained", self.result.get("pretrained")),
            "synthetic": self.synthetic,
            "finished": self.finished,
            "train_cells": self.result.get("train_cells"),
            "valid_cells": self.result.get("valid_cells"),
        }


def collect_runs(results_dir: Path, specs: dict[str, Spec], profile: str | None) -> dict[str, Run | None]:
    """The latest finished run of every spec (None where there is none); nothing is created on disk."""
    if not Path(results_dir).is_dir():
        return {sid: None for sid in specs}
    store = Store(results_dir)
    runs: dict[str, Run | None] = {}
    for sid in specs:
        run_dir = store.latest(sid, profile)
        runs[sid] = Run.read(run_dir) if run_dir is not None else None
    return runs


def report_order(specs: dict[str, Spec]) -> list[str]:
    """Specs in the order of chapter 4 (section 4.1.1 to 4.2.5); an ensemble after its members' section."""

    def key(sid: str) -> tuple:
        spec = specs[sid]
        section = tuple(int(p) for p in re.findall(r"\d+", spec.report.section))
        return (section, spec.kind == "ensemble", sid)

    return sorted(specs, key=key)


# ------------------------------------------------------------------------------------------------------------ figures


class Figures:
    """PNG images by name: inlined as data URIs in the HTML, written as files beside the Markdown."""

    def __init__(self) -> None:
        self.png: dict[str, bytes] = {}

    def add(self, name: str, fig: Figure) -> str:
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", name)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
        self.png[name] = buf.getvalue()
        return name

    def data_uri(self, name: str) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png[name]).decode("ascii")

    def relative_path(self, name: str) -> str:
        return f"{IMAGES_DIR}/{name}.png"

    def write(self, folder: Path) -> None:
        """Write every image (atomically) and remove the images an earlier report left that this one lacks."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.png.items():
            write_atomic(folder / f"{name}.png", lambda f, data=data: f.write(data))
        for stale in folder.glob("*.png"):
            if stale.stem not in self.png:
                stale.unlink()


def _figure(
    width: float, height: float, cols: int = 1, left: float = 0.8, top: float = 0.45, wspace: float = 0.25
) -> tuple[Figure, list]:
    """A figure of ``cols`` axes side by side with fixed margins in inches (a computed layout would draw every
    figure twice more)."""
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(
        left=left / width, right=1 - 0.2 / width, bottom=0.55 / height, top=1 - top / height, wspace=wspace
    )
    axes = fig.subplots(1, cols, squeeze=False)[0]
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, list(axes)


def plot_table(key: str, table: PublishedTable, rows: list[dict]) -> Figure:
    """A printed table's epochs against the reproduced ones: metrics left, losses right (Tables 4.1-4.14).
    One colour per column; published solid with filled markers, reproduced dashed with open ones."""
    fig, (left, right) = _figure(10, 3.4, cols=2)
    metrics = [c for c in ("accuracy", "f_beta", "error_rate") if c in table.columns]
    for ax, columns, title in ((left, metrics, "metrics"), (right, ["train_loss", "valid_loss"], "losses")):
        for col in columns:
            pub = [(r["epoch"], r["published"][col]) for r in rows if r["published"] and col in r["published"]]
            rep = [(r["epoch"], r["reproduced"][col]) for r in rows if (r["reproduced"] or {}).get(col) is not None]
            if pub:
                ax.plot(*zip(*pub, strict=True), "-o", ms=4, color=COLUMN_COLOURS[col], label=f"{col} published")
            if rep:
                ax.plot(
                    *zip(*rep, strict=True),
                    "--s",
                    ms=5,
                    mfc="none",
                    color=COLUMN_COLOURS[col],
                    label=f"{col} reproduced",
                )
        ax.set_title(f"Table {key}: {title}, published against reproduced", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    return fig


def plot_confusions(panels: list[tuple[str, list[list[int]]]]) -> Figure:
    """Confusion matrices side by side; rows true ALL/normal, columns predicted ALL/normal, counts and row %."""
    fig, axes = _figure(3.6 * len(panels), 3.4, cols=len(panels), left=1.0, top=0.6, wspace=0.45)
    for ax, (title, matrix) in zip(axes, panels, strict=True):
        ax.grid(False)
        ax.imshow(matrix, cmap="Blues", vmin=0)
        peak = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            total = sum(row) or 1
            for j, count in enumerate(row):
                colour = "white" if count > peak / 2 else "black"
                ax.text(j, i, f"{count}\n{100 * count / total:.1f}%", ha="center", va="center", color=colour)
        ax.set_xticks([0, 1], [f"pred. {c}" for c in CLASSES])
        ax.set_yticks([0, 1], [f"true {c}" for c in CLASSES])
        ax.set_title(title, fontsize=8)
    return fig


def plot_lr_find(curve: dict, chosen: float | None, chosen_text: str | None, suggestion: float | None) -> Figure:
    """The learning-rate finder's loss per rate (Figs 4.1, 4.3, 4.5, 4.6) with the report's rate marked."""
    fig, (ax,) = _figure(6, 3.2)
    ax.plot(curve.get("lrs", []), curve.get("losses", []), color=REPRODUCED_COLOUR, label="loss (reproduced)")
    ax.set_xscale("log")
    if chosen:
        ax.axvline(chosen, color=PUBLISHED_COLOUR, ls="--", label=f"report's rate {chosen_text}")
    if suggestion:
        ax.axvline(suggestion, color="#2e7d32", ls=":", label=f"fastai suggestion {suggestion:.3g}")
    ax.set_title("learning-rate finder: training loss per rate", fontsize=9)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7)
    return fig


def plot_bayesian(published: list[dict], reproduced: list[dict], init_points: int | None) -> Figure:
    """Fig 4.12: the validation accuracy of every probe, published and reproduced."""
    fig, (ax,) = _figure(7, 3.2)
    if published:
        ax.plot(
            [p["index"] for p in published],
            [p["target"] for p in published],
            "-o",
            ms=4,
            color=PUBLISHED_COLOUR,
            label="published (Fig 4.12)",
        )
    if reproduced:
        ax.plot(
            [p["index"] for p in reproduced],
            [p["target"] for p in reproduced],
            "--s",
            ms=5,
            mfc="none",
            color=REPRODUCED_COLOUR,
            label="reproduced",
        )
    if init_points:
        ax.axvline(init_points - 0.5, color="grey", ls=":", label="random probes | guided probes")
    ax.set_title("Fig 4.12: validation accuracy of every probe", fontsize=9)
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation accuracy (target)")
    ax.legend(fontsize=7)
    return fig


def plot_kfold(rows: list[dict], folds: int, cycle: str) -> Figure:
    """Validation accuracy per fold at the end of the printed cycle: Tables 4.9-4.13 against each variant."""
    fig, (ax,) = _figure(7, 3.2)
    colours = iter(VARIANT_COLOURS)
    for row in rows:
        if all(v is None for v in row["per_fold"]):
            continue
        if row["label"] == "published":
            ax.plot(range(folds), row["per_fold"], "-o", color=PUBLISHED_COLOUR, label="published (Tables 4.9-4.13)")
        else:
            ax.plot(range(folds), row["per_fold"], "--s", mfc="none", color=next(colours, "grey"), label=row["label"])
    ax.set_xticks(list(range(folds)))
    ax.set_title(f"validation accuracy per fold at the end of {cycle}", fontsize=9)
    ax.set_xlabel("fold")
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=7)
    return fig


def plot_ensembles(combos: list[dict], published: float | None, tolerance: float) -> Figure:
    """Section 4.2.1: each ensemble's test accuracy against the published 87%."""
    fig, (ax,) = _figure(8, 0.6 * len(combos) + 1.2, left=2.6)
    labels = [" + ".join(c["members"]) for c in combos]
    values = [c["test"]["accuracy"] if c["test"] else 0.0 for c in combos]
    ax.barh(labels, values, color=REPRODUCED_COLOUR, alpha=0.8, label="reproduced test accuracy")
    if published is not None:
        ax.axvspan(published - tolerance, published + tolerance, color=PUBLISHED_COLOUR, alpha=0.12)
        ax.axvline(published, color=PUBLISHED_COLOUR, ls="--", label=f"published {published:.0%} (± tolerance)")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy")
    ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1, 1), ncol=2, frameon=False)
    ax.set_title("section 4.2.1: test accuracy of each ensemble", fontsize=9, loc="left")
    return fig


# ------------------------------------------------------------------------------------------------- confusion matrices


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
        if finding.get("beta_note") == "no f_beta column":
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


def reproduced_confusion(spec: Spec, table: PublishedTable, run: Run | None) -> dict[str, Any] | None:
    """The run's validation confusion matrix at its end (of the table's fold for k-fold), and after which stage."""
    if run is None:
        return None
    result = run.result
    if table.fold is not None:
        folds = [f for f in result.get("folds") or [] if f.get("fold") == table.fold]
        summary = folds[0].get("validation") if folds else None
    else:
        summary = result.get("validation")
    if not summary or not summary.get("confusion"):
        return None
    stages = spec.bayesian.retrain if spec.kind == "bayesian_search" and spec.bayesian else spec.recipe.stages
    last_stage = stages[-1].name if stages else None
    return {"matrix": summary["confusion"], "cells": summary.get("cells"), "stage": last_stage, "fold": table.fold}


# ----------------------------------------------------------------------------------------------------- views per spec


def table_view(spec: Spec, key: str, table: PublishedTable, run: Run | None, findings: dict, figures: Figures) -> dict:
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
        "synthetic": bool(run and run.synthetic),
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


def lr_find_view(spec: Spec, run: Run | None, figures: Figures) -> dict | None:
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


def schedule_view(spec: Spec, run: Run | None) -> list[dict] | None:
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


def bayesian_view(spec: Spec, run: Run | None, findings: dict, figures: Figures) -> dict | None:
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
    reproduced = list((run.result.get("probes") if run else None) or [])
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
        "reproduced_best": (run.result.get("best") if run else None),
        "bounds": spec.bayesian.bounds if spec.bayesian else {},
        "init_points": init_points,
        "n_iter": spec.bayesian.n_iter if spec.bayesian else None,
        "image": image,
    }


def _mean_std(values: list[float | None]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def kfold_view(specs: dict[str, Spec], runs: dict[str, Run | None], figures: Figures) -> dict | None:
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
        by_fold = {f.get("fold"): split_summary(f.get("validation")) or {} for f in run.result.get("folds") or []}
        cycle_ends = [[e for e in run.epochs if e.get("fold") == k and e.get("stage") == cycle] for k in range(folds)]
        summary = run.result.get("kfold_summary") or {}
        rows.append(
            _kfold_row(
                spec.id, what, f"end of {cycle}", "accuracy", [e[-1].get("accuracy") if e else None for e in cycle_ends]
            )
        )
        for metric in ("accuracy", "f_beta"):
            values = [by_fold.get(k, {}).get(metric) for k in range(folds)]
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
        "mean": tuple(stored) if stored else _mean_std(values),
    }


def ensemble_view(spec: Spec, run: Run | None, figures: Figures) -> dict | None:
    """Section 4.2.1: every combination's test accuracy against the published 87%."""
    if spec.kind != "ensemble" or spec.ensemble is None:
        return None
    published = percent(spec.published.test_accuracy)
    stored = {tuple(e["members"]): e for e in ((run.result.get("ensembles") if run else None) or [])}
    tolerance = spec.tolerance.test_accuracy
    combos = []
    for members in spec.ensemble.combinations:
        entry = stored.get(tuple(members)) or {}
        test = split_summary(entry.get("test"))
        accuracy = test["accuracy"] if test else None
        diff = accuracy - published if accuracy is not None and published is not None else None
        combos.append(
            {
                "members": members,
                "member_runs": entry.get("member_runs") or [],
                "test": test,
                "test_cells": entry.get("test_cells"),
                "validation": split_summary(entry.get("validation")),
                "difference": diff,
                "verdict": verdict(diff, tolerance, run.synthetic if run else False),
            }
        )
    best = (run.result.get("best") if run else None) or {}
    image = figures.add(f"{spec.id}-test", plot_ensembles(combos, published, tolerance)) if run else None
    return {
        "published": published,
        "tolerance": tolerance,
        "combos": combos,
        "best": best.get("members"),
        "image": image,
    }


def split_summary(summary: dict | None) -> dict | None:
    """A stored validation or test summary with every key the templates read (missing ones None)."""
    if not summary:
        return None
    return {k: summary.get(k) for k in SUMMARY_KEYS}


def spec_view(spec: Spec, run: Run | None, findings: dict, figures: Figures) -> dict:
    """Everything the report shows of one spec."""
    tables = sorted(spec.published.tables.items(), key=lambda kv: table_key_order(kv[0]))
    return {
        "spec": spec,
        "run": run.info() if run else None,
        "validation": split_summary(run.result.get("validation")) if run else None,
        "test": split_summary(run.result.get("test")) if run else None,
        "notes": [*spec.notes, *spec.published.notes],
        "lr_find": lr_find_view(spec, run, figures),
        "tables": [table_view(spec, key, table, run, findings, figures) for key, table in tables],
        "schedule": schedule_view(spec, run),
        "bayesian": bayesian_view(spec, run, findings, figures),
        "ensemble": ensemble_view(spec, run, figures),
    }


# ------------------------------------------------------------------------------------------------ summary, provenance


def summary_view(specs: dict[str, Spec], runs: dict[str, Run | None], order: list[str]) -> list[dict]:
    """The summary table: compare.summary_rows of every spec, and one "not run" line for a spec that has no
    published figure and no run."""
    rows = []
    for sid in order:
        run = runs[sid]
        found = summary_rows(
            specs[sid], run.result if run else None, run.epochs if run else [], bool(run and run.synthetic)
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


def provenance(runs: dict[str, Run | None], profile: str | None) -> dict[str, Any]:
    """Where the figures come from: data, profile, seeds, devices, libraries, code, dates and time."""
    done = [r for r in runs.values() if r is not None]
    data = [r.meta.get("data") or {} for r in done]
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
    infos = [r.info() for r in done]
    return {
        "runs": len(done),
        "synthetic": any(r.synthetic for r in done),
        "synthetic_runs": [r.dir.name for r in done if r.synthetic],
        "real_runs": [r.dir.name for r in done if not r.synthetic],
        "data_roots": _distinct(d.get("root") for d in data),
        "fingerprints": _distinct(d.get("fingerprint") for d in data),
        "profile_asked": profile,
        "profiles": _distinct(i["profile"] for i in infos),
        "seeds": _distinct(i["seed"] for i in infos),
        "devices": _distinct(i["device"] for i in infos),
        "gpus": _distinct(r.env.get("gpu") for r in done),
        "pretrained": _distinct(i["pretrained"] for i in infos),
        "python": _distinct(r.env.get("python") for r in done),
        "platforms": _distinct(r.env.get("platform") for r in done),
        "libraries": libraries,
        "commits": commits,
        "code_versions": _distinct(r.env.get("code_version") for r in done),
        "first_finished": finished[0] if finished else None,
        "last_finished": finished[-1] if finished else None,
        "seconds": sum(r.seconds for r in done),
        "generated": dt.datetime.now(dt.UTC),
    }


def audit_view(findings: dict) -> dict[str, Any]:
    """The audit's findings, compactly: per table N, beta and P; the Bayesian set-up and which iterations
    bayes_opt proposes again exactly; the test-accuracy fits; the spec fields that disagree."""
    checks = findings.get("spec_checks", [])
    bayes = findings.get("bayesian")
    return {
        "tables": findings.get("tables", {}),
        "kfold": findings.get("kfold", {}),
        "bayesian": bayes,
        "tests": findings.get("test_accuracy", {}),
        "checks": len(checks),
        "agreeing": sum(c["agrees"] is True for c in checks),
        "disagreeing": [c for c in checks if c["agrees"] is False],
        "undecided": [c for c in checks if c["agrees"] is None],
    }


def build_context(
    specs: dict[str, Spec], runs: dict[str, Run | None], findings: dict, figures: Figures, profile: str | None
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


# --------------------------------------------------------------------------------------------- formatting (templates)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        fixed=fixed,
        signed=signed,
        pct=pct,
        sci=sci,
        duration=duration,
        when=when,
        verdict_class=verdict_class,
        tone=tone,
        md=md_cell,
        plural=plural,
    )
    return env


def fixed(value: float | None, digits: int = 4) -> str:
    """0.911207 -> "0.9112" (``digits`` decimals); None -> "–"."""
    return "–" if value is None else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 4) -> str:
    """A difference with its sign: "+0.0123", "-0.0456"; None -> "–"."""
    return "–" if value is None else f"{value:+.{digits}f}"


def pct(value: float | None, digits: int = 2) -> str:
    """0.7546 -> "75.46%"; None -> "–"."""
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def sci(value: float | None) -> str:
    """A rate or weight: 0.0072035 -> "0.0072", 1e-06 -> "1e-06"; None -> "–"."""
    return "–" if value is None else f"{value:.3g}"


def duration(seconds: float | None) -> str:
    """4321.5 -> "1h 12m 02s"; 75 -> "1m 15s"; 3.21 -> "3.2s"."""
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


def when(moment: dt.datetime | None) -> str:
    return "–" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def verdict_class(text: str) -> str:
    """A CSS class for a verdict of compare.verdict."""
    if text.startswith("not comparable"):
        return "synthetic"
    return {"reproduced": "ok", "differs": "bad"}.get(text, "none")


def tone(difference: float | None, tolerance: float | None, synthetic: bool = False) -> str:
    """A CSS class for one per-epoch difference against the spec's tolerance."""
    if difference is None or tolerance is None:
        return ""
    if synthetic:
        return "synthetic"
    return "ok" if abs(difference) <= tolerance else "bad"


def md_cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
