"""The report's figures, drawn with matplotlib (no display): each printed table's epochs published against
reproduced, confusion matrices, the learning-rate finder, Fig 4.12's probes, k-fold folds and ensembles."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from cnmc_repro.atomic import write_atomic
from cnmc_repro.spec.schema import PublishedTable

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


def plot_table(key: str, table: PublishedTable, rows: list[dict], n: int) -> Figure:
    """A printed table's epochs against the reproduced ones: metrics left, losses right (Tables 4.1-4.14).
    One colour per column; published solid with filled markers, the mean of the ``n`` runs dashed with open
    ones over a band from their minimum to their maximum."""
    fig, (left, right) = _figure(10, 3.4, cols=2)
    metrics = [c for c in ("accuracy", "f_beta", "error_rate") if c in table.columns]
    label = "reproduced" if n <= 1 else f"mean of {n} seeds (band: min-max)"
    for ax, columns, title in ((left, metrics, "metrics"), (right, ["train_loss", "valid_loss"], "losses")):
        for col in columns:
            pub = [(r["epoch"], r["published"][col]) for r in rows if r["published"] and col in r["published"]]
            rep = [(r["epoch"], r["reproduced"][col]) for r in rows if (r["reproduced"] or {}).get(col) is not None]
            if pub:
                ax.plot(*zip(*pub, strict=True), "-o", ms=4, color=COLUMN_COLOURS[col], label=f"{col} published")
            if rep:
                epochs = [ep for ep, _ in rep]
                ax.plot(
                    epochs,
                    [s.mean for _, s in rep],
                    "--s",
                    ms=5,
                    mfc="none",
                    color=COLUMN_COLOURS[col],
                    label=f"{col} {label}",
                )
                if n > 1:
                    lows, highs = [s.min for _, s in rep], [s.max for _, s in rep]
                    ax.fill_between(epochs, lows, highs, color=COLUMN_COLOURS[col], alpha=0.15, lw=0)
        ax.set_title(f"Table {key}: {title}, published against reproduced", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
    return fig


def plot_confusions(panels: list[tuple[str, list[list[float]]]]) -> Figure:
    """Confusion matrices side by side; rows true ALL/normal, columns predicted ALL/normal, counts (a mean
    over seeds to one decimal) and row %."""
    fig, axes = _figure(3.6 * len(panels), 3.4, cols=len(panels), left=1.0, top=0.6, wspace=0.45)
    for ax, (title, matrix) in zip(axes, panels, strict=True):
        ax.grid(False)
        ax.imshow(matrix, cmap="Blues", vmin=0)
        peak = max(max(row) for row in matrix) or 1
        for i, row in enumerate(matrix):
            total = sum(row) or 1
            for j, count in enumerate(row):
                colour = "white" if count > peak / 2 else "black"
                shown = f"{count:.1f}" if count != int(count) else f"{int(count)}"
                ax.text(j, i, f"{shown}\n{100 * count / total:.1f}%", ha="center", va="center", color=colour)
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
    """Section 4.2.1: each ensemble's test accuracy (the mean over the seeds, whiskers min-max) against the
    published 87%."""
    fig, (ax,) = _figure(8, 0.6 * len(combos) + 1.2, left=2.6)
    labels = [" + ".join(c["members"]) for c in combos]
    spreads = [c["comparison"].spread for c in combos]
    means = [s.mean if s else 0.0 for s in spreads]
    # the mean of equal values can differ from them in the last bit: no negative whisker
    errors = [
        [max(0.0, s.mean - s.min) if s else 0.0 for s in spreads],
        [max(0.0, s.max - s.mean) if s else 0.0 for s in spreads],
    ]
    ax.barh(labels, means, xerr=errors, color=REPRODUCED_COLOUR, alpha=0.8, label="reproduced test accuracy")
    if published is not None:
        ax.axvspan(published - tolerance, published + tolerance, color=PUBLISHED_COLOUR, alpha=0.12)
        ax.axvline(published, color=PUBLISHED_COLOUR, ls="--", label=f"published {published:.0%} (± tolerance)")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (mean over the seeds; whiskers: min-max)")
    ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1, 1), ncol=2, frameon=False)
    ax.set_title("section 4.2.1: test accuracy of each ensemble", fontsize=9, loc="left")
    return fig


def plot_augmentations(cell, draws: dict[str, object]) -> Figure:
    """One training cell (left) and its draws under each augmentation set, one row per set (section 3.2.3)."""
    n = max(len(d) for d in draws.values())
    fig = Figure(figsize=(1.2 * (n + 1), 1.35 * len(draws) + 0.3))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.3 / (1.35 * len(draws) + 0.3), hspace=0.35)
    axes = fig.subplots(len(draws), n + 1, squeeze=False)
    for row, (name, images) in zip(axes, draws.items(), strict=True):
        for ax in row:
            ax.set_axis_off()
        row[0].imshow(cell)
        row[0].set_title("the cell", fontsize=7)
        for i, (ax, image) in enumerate(zip(row[1:], images, strict=False)):
            ax.imshow(image)
            ax.set_title(f"{name}, draw {i + 1}", fontsize=6)
    return fig
