"""Reproduced figures beside the published ones: each printed table epoch by epoch, and every published
figure against the spread of the reproduced runs (one per seed) with its verdict (``analysis.seeds``).

The published figures of a spec (:func:`published_figures`): the final-epoch accuracy and f_beta of each
printed table, the test accuracy, the mean of the k-fold tables' last rows (computed from the printed
tables) and the Bayesian search's best probe. :func:`compare` sets each against the spec's runs.

Works on plain numbers from stored runs and specs; no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cnmc_repro.analysis.audit.printed import printed_value
from cnmc_repro.analysis.seeds import Spread, Verdict, half_unit, outside, spread, verdict
from cnmc_repro.spec.schema import PublishedTable, Spec
from cnmc_repro.store.folders import StoredRun

COLUMNS = ("train_loss", "valid_loss", "accuracy", "error_rate", "f_beta")
TABLE_METRICS = ("accuracy", "f_beta")  # the final figures of a printed table that are compared
UNPUBLISHED_TEST = (("sensitivity", "test ALL recall"), ("weighted_f1", "test weighted F1"))


def published_value(printed: str) -> float:
    """A printed figure as a number: ``"0.911207"`` -> 0.911207, ``"75.46%"`` -> 0.7546."""
    return float(printed_value(printed)[0])


def stage_epochs(table: PublishedTable, epochs: list[dict]) -> list[dict]:
    """The reproduced epochs a published table shows: its stage (and fold), in order."""
    return [
        e
        for e in epochs
        if e.get("stage") == table.stage and (table.fold is None or e.get("fold") == table.fold) and "probe" not in e
    ]


def spread_over(runs: Sequence[StoredRun], value: Callable[[StoredRun], float | None]) -> Spread | None:
    """The spread of ``value`` over the runs that have it (None when none has)."""
    pairs = [(v, r.record.seed) for r in runs if (v := value(r)) is not None]
    return spread([v for v, _ in pairs], [s for _, s in pairs])


# ---------------------------------------------------------------------------------------------- per epoch


def table_rows(table: PublishedTable, runs: Sequence[StoredRun]) -> list[dict]:
    """One row per published epoch (a row printed twice is kept twice) with, per column, the spread of the
    runs' epoch and the difference of its mean from the printed value; then the epochs the runs trained
    beyond the printed ones."""
    by_run = {r.dir: {e["epoch"]: e for e in stage_epochs(table, r.epochs)} for r in runs}

    def reproduced(ep: int) -> dict[str, Spread | None] | None:
        if not any(ep in epochs for epochs in by_run.values()):
            return None
        return {k: spread_over(runs, lambda r, k=k: by_run[r.dir].get(ep, {}).get(k)) for k in (*COLUMNS, "seconds")}

    rows = []
    for pub in table.values():
        ep = int(pub["epoch"])
        rep = reproduced(ep)
        difference = {k: rep[k].mean - pub[k] for k in COLUMNS if rep and k in pub and rep[k] is not None}
        rows.append({"epoch": ep, "published": pub, "reproduced": rep, "difference": difference})
    printed = {int(p["epoch"]) for p in table.values()}
    for ep in sorted(set().union(*by_run.values()) - printed):  # epochs run beyond the printed ones
        rows.append({"epoch": ep, "published": None, "reproduced": reproduced(ep), "difference": {}})
    return rows


def within(difference: float | None, tolerance: float | None) -> bool | None:
    """Whether a reproduced figure lies within the spec's stated tolerance of the published one."""
    if difference is None or tolerance is None:
        return None
    return abs(difference) <= tolerance


# ---------------------------------------------------------------------------------------- published figures


class Measure(StrEnum):
    """Where a published figure is read from in a run."""

    TABLE_FINAL = "table_final"  # the last epoch of a printed table's stage (and fold)
    TEST = "test"  # the run's test figures (an ensemble's: its best combination's)
    KFOLD_MEAN = "kfold_mean"  # the mean over the folds of the k-fold tables' last epochs
    BEST_PROBE = "best_probe"  # the Bayesian search's best probe


@dataclass(frozen=True)
class PublishedFigure:
    """One figure the report prints (or, with ``printed`` empty, one the suite shows that it does not)."""

    spec: str
    table: str | None  # the printed table ("4.1"; "4.9-4.13" for the k-fold mean); None for a figure in the text
    figure: str  # what it is, in the report's terms: "final validation accuracy", "test accuracy", ...
    measure: Measure
    metric: str  # the run's figure: accuracy, f_beta, sensitivity, target, ...
    printed: tuple[str, ...]  # as printed; several for a figure computed from printed ones
    published: float | None
    tolerance: float | None  # the spec's stated tolerance
    tables: tuple[str, ...] = ()  # the k-fold mean: the tables it averages

    @property
    def what(self) -> str:
        if not self.table:
            return self.figure
        return f"{'Tables' if len(self.tables) > 1 else 'Table'} {self.table} {self.figure}"


def _figure(
    spec: Spec, table: str | None, figure: str, measure: Measure, metric: str, printed: tuple[str, ...],
    tolerance: float | None, tables: tuple[str, ...] = (),
) -> PublishedFigure:  # fmt: skip
    """A published figure: the value printed, or the mean of several printed ones (None when none is)."""
    published = sum(published_value(p) for p in printed) / len(printed) if printed else None
    return PublishedFigure(spec.id, table, figure, measure, metric, printed, published, tolerance, tables)


def published_figures(spec: Spec) -> list[PublishedFigure]:
    """Every published figure of a spec, in the report's order, and the test figures it does not publish."""
    tol = spec.tolerance
    tolerance = {"accuracy": tol.accuracy, "f_beta": tol.f_beta}
    out = []
    for key, table in spec.published.tables.items():
        last = table.printed_rows()[-1]
        for metric in (m for m in TABLE_METRICS if m in last):
            what = f"final validation {metric}"
            out.append(
                _figure(spec, key, what, Measure.TABLE_FINAL, metric, (last[metric],), tolerance[metric], (key,))
            )
    folds = {key: t for key, t in spec.published.tables.items() if t.fold is not None}
    if spec.kind == "kfold" and folds:
        keys = tuple(sorted(folds, key=lambda k: folds[k].fold))
        for metric in (m for m in TABLE_METRICS if all(m in folds[k].columns for k in keys)):
            printed = tuple(folds[k].printed_rows()[-1][metric] for k in keys)
            what = f"mean final validation {metric} of the folds (from the printed tables)"
            table = f"{keys[0]}-{keys[-1]}"
            out.append(_figure(spec, table, what, Measure.KFOLD_MEAN, metric, printed, tolerance[metric], keys))
    if text := spec.published.test_accuracy:
        out.append(_figure(spec, None, "test accuracy", Measure.TEST, "accuracy", (text,), tol.test_accuracy))
    best = next((b for b in spec.published.bayesian if b.index == spec.published.bayesian_best), None)
    if best is not None:
        what = f"best probe's validation accuracy (Fig 4.12, iteration {best.index})"
        out.append(_figure(spec, None, what, Measure.BEST_PROBE, "target", (best.target,), tol.accuracy))
    if spec.kind != "kfold":  # a k-fold run's test figures are its last fold's model's only
        out += [_figure(spec, None, label, Measure.TEST, metric, (), None) for metric, label in UNPUBLISHED_TEST]
    return out


def reproduced(figure: PublishedFigure, run: StoredRun, tables: dict[str, PublishedTable]) -> float | None:
    """The figure as one run measured it (None when the run does not hold it)."""
    record = run.record
    if figure.measure is Measure.TEST:
        return getattr(record.test, figure.metric) if record.test else None
    if figure.measure is Measure.BEST_PROBE:
        return record.best_probe.target if record.best_probe else None
    finals = []
    for key in figure.tables:
        epochs = stage_epochs(tables[key], run.epochs)
        finals.append(epochs[-1].get(figure.metric) if epochs else None)
    if not finals or any(v is None for v in finals):
        return None
    return sum(finals) / len(finals)


# --------------------------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Comparison:
    """A published figure against the spread of the runs that hold it, with the verdict of ``seeds``."""

    figure: PublishedFigure
    spread: Spread | None
    runs: tuple[str, ...]  # the run ids, in the order of the seeds
    half_unit: float  # of the last printed digit (0 for a figure not published)
    verdict: Verdict
    synthetic: bool

    @property
    def difference(self) -> float | None:
        """The mean of the runs minus the published value."""
        if self.spread is None or self.figure.published is None:
            return None
        return self.spread.mean - self.figure.published

    @property
    def within_tolerance(self) -> bool | None:
        """The runs' mean within the spec's stated tolerance (the practical check; None on synthetic data)."""
        return None if self.synthetic else within(self.difference, self.figure.tolerance)

    @property
    def outside(self) -> float:
        """How far the published value lies outside the widened interval (0 inside or without one)."""
        if self.spread is None or self.figure.published is None:
            return 0.0
        return outside(self.figure.published, self.half_unit, self.spread)

    def to_json(self) -> dict[str, Any]:
        """One record of ``report.json``: raw numbers, the interval before its widening by ``half_unit``."""
        f, s = self.figure, self.spread
        return {
            "spec": f.spec,
            "table": f.table,
            "figure": f.figure,
            "metric": f.metric,
            "printed": list(f.printed),
            "published": f.published,
            "half_unit": self.half_unit,
            "n": s.n if s else 0,
            "seeds": list(s.seeds) if s else [],
            "runs": list(self.runs),
            "mean": s.mean if s else None,
            "sd": s.sd if s else None,
            "min": s.min if s else None,
            "max": s.max if s else None,
            "pi_low": s.pi_low if s else None,
            "pi_high": s.pi_high if s else None,
            "difference": self.difference,
            "verdict": self.verdict.value,
            "tolerance": f.tolerance,
            "within_tolerance": self.within_tolerance,
            "synthetic": self.synthetic,
        }


def judge(figure: PublishedFigure, values: Sequence[tuple[StoredRun, float | None]]) -> Comparison:
    """A published figure against the runs' values of it (a run without the figure is left out)."""
    held = [(run, v) for run, v in values if v is not None]
    found = spread([v for _, v in held], [run.record.seed for run, _ in held])
    synthetic = any(run.record.synthetic for run, _ in values)
    half = half_unit(figure.printed) if figure.printed else 0.0
    return Comparison(
        figure=figure,
        spread=found,
        runs=tuple(run.dir.name for run, _ in held),
        half_unit=half,
        verdict=verdict(figure.published, half, found, synthetic),
        synthetic=synthetic,
    )


def compare(spec: Spec, runs: Sequence[StoredRun]) -> list[Comparison]:
    """Every figure of :func:`published_figures` against the runs of one series (one run per seed); a figure
    the report does not publish only where a run holds it."""
    tables = spec.published.tables
    found = [judge(f, [(run, reproduced(f, run, tables)) for run in runs]) for f in published_figures(spec)]
    return [c for c in found if c.figure.published is not None or c.spread is not None]
