"""The specs' fields checked against the audit (:func:`spec_checks`), the k-fold folds (Fig 4.9, Tables
4.9-4.13; :func:`audit_kfold`) and the test accuracies (sections 4.1.1-4.2.1; :func:`audit_test_accuracy`)
against the cells of section 3.1, with the records they give and the prose rendered from them.

The k-fold folds have no validation size of their own: their audited sizes are folds of a split of M cells
(floor/ceil(M/folds)), which the printed folds pin down and which a split of the 10,661 training cells does
not give. A test accuracy is some k/1867 printed to its digits, rounded or, failing that, cut off.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum, auto
from typing import Any

from cnmc_repro.analysis.audit.bayes import BayesFinding
from cnmc_repro.analysis.audit.findings import Agreement, BetaState, SpecCheck, TableFinding
from cnmc_repro.analysis.audit.printed import printed_value, ratio_fits, truncation_fits
from cnmc_repro.analysis.audit.tables import class_shares, table_key_order
from cnmc_repro.run.bayesian import KEYS
from cnmc_repro.spec.dataset import published_dataset
from cnmc_repro.spec.schema import Spec


@dataclass(frozen=True)
class KFoldFinding:
    """The k-fold folds (Fig 4.9, Tables 4.9-4.13): their audited sizes, the cells M they split (floor/ceil of
    M/folds), the positives every fold can hold, and what a split of the training cells would give."""

    tables: list[str]
    fold_sizes: list[int | None]
    folds: int
    dataset_cells: int
    class_shares: dict[str, float]
    cells_candidates: list[int] = field(default_factory=list)
    positives_ranges: list[list[int]] | None = None  # each fold's F1 range of P, when every fold has one

    @property
    def sizes_known(self) -> bool:
        return bool(self.fold_sizes) and all(s is not None for s in self.fold_sizes)

    @property
    def complete(self) -> bool:
        return len(self.fold_sizes) == self.folds

    @property
    def cells(self) -> int | None:
        return sum(self.fold_sizes) if self.sizes_known and self.complete else None

    @property
    def dataset_fold_sizes(self) -> list[int]:
        return sorted({self.dataset_cells // self.folds, -(-self.dataset_cells // self.folds)})

    @property
    def _positives_bounds(self) -> tuple[int, int]:
        # every fold holds q or q+1 positives: q in [max lo - 1, min hi], so every fold's P in [max lo - 1, min hi + 1]
        ranges = self.positives_ranges or []
        return max(r[0] for r in ranges) - 1, min(r[1] for r in ranges) + 1

    @property
    def positives_per_fold(self) -> list[int] | None:
        lo, hi = self._positives_bounds
        return [lo, hi] if lo < hi else None

    @property
    def positives_basis(self) -> str:
        lo, hi = self._positives_bounds
        sizes = self.fold_sizes
        return (
            "StratifiedKFold (Fig 4.9) gives every fold q or q+1 positives; the folds' F1 ranges of P "
            + ", ".join(f"{k}: {r[0]}..{r[1]}" for k, r in zip(self.tables, self.positives_ranges or [], strict=True))
            + (
                f" leave every fold {lo}..{hi} positives ({lo / max(sizes):.3f}..{hi / min(sizes):.3f} of a fold; "
                + ", ".join(f"{c} {v:.3f}" for c, v in self.class_shares.items())
                + " of the training cells)"
                if lo < hi
                else " are incompatible"
            )
        )

    @property
    def sizes_text(self) -> str:
        """The folds' sizes as a spec check's audit value for ``recipe.valid_size``."""
        cells = self.cells
        return f"folds of {', '.join(map(str, self.fold_sizes))} cells (Tables {', '.join(self.tables)})" + (
            f" = 1/{self.folds} of {cells} cells" if cells else ""
        )

    @property
    def sizes_note(self) -> str:
        cells = self.cells
        return (
            f"k-fold folds have no valid_size; a {self.folds}-fold split of the {self.dataset_cells} training cells "
            f"(section 3.1) has folds of {'/'.join(map(str, self.dataset_fold_sizes))}"
            + (f", the printed folds add up to {cells}" if cells else "")
        )

    @property
    def folds_text(self) -> str:
        """The cells M the fold sizes split, as a spec check's audit value for ``kfold.folds``."""
        if not self.cells_candidates:
            return "no M fits"
        return f"fold sizes {self.fold_sizes} are floor/ceil(M/{self.folds}) for M in {self.cells_candidates}"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"tables": self.tables, "fold_sizes": self.fold_sizes, "folds": self.folds}
        if not self.sizes_known:
            return doc
        doc.update(cells=self.cells, cells_candidates=self.cells_candidates, dataset_cells=self.dataset_cells)
        if self.positives_ranges is not None:
            doc["positives_per_fold"] = self.positives_per_fold
            doc["positives_basis"] = self.positives_basis
        doc["dataset_fold_sizes"] = self.dataset_fold_sizes
        return doc


# ------------------------------------------------------------------------------------------------ test accuracies


class RatioState(Enum):
    """How a published test accuracy relates to the ratios k/n of the test cells."""

    ROUNDED = auto()  # some k/n rounded to the printed digits gives it
    TRUNCATED = auto()  # none does, but some k/n cut off after the printed digits gives it
    NEITHER = auto()  # no k/n gives it, rounded or cut off


@dataclass(frozen=True)
class TestAccuracyFinding:
    """Which k/n print as a published test accuracy (``checks.audit_test_accuracy``): rounded to the printed
    digits (``fits``) and, failing that, cut off (``fits_truncated``); ``nearest`` is the k nearest to it."""

    printed: str
    test_cells: int
    fits: list[int]
    fits_truncated: list[int]
    nearest: int

    @property
    def state(self) -> RatioState:
        if self.fits:
            return RatioState.ROUNDED
        return RatioState.TRUNCATED if self.fits_truncated else RatioState.NEITHER

    @property
    def nearest_printed(self) -> str:
        return f"{100 * self.nearest / self.test_cells:.{self._pct_digits}f}%"

    @property
    def _pct_digits(self) -> int:
        return max(0, printed_value(self.printed)[1] - 2)

    @property
    def basis(self) -> list[str]:
        printed, n, nearest = self.printed, self.test_cells, self.nearest
        window = n * 10.0 ** -printed_value(printed)[1]  # the expected number of k/n in a window one unit wide
        if self.state is RatioState.ROUNDED:
            text = f"{printed} is k/{n} for {_k_text(self.fits)}"
        else:
            text = (
                f"{printed} is no k/{n}: the nearest, {nearest}/{n} = {100 * nearest / n:.6f}%, prints as "
                f"{self.nearest_printed}"
            )
        if self.state is RatioState.TRUNCATED:
            text += (
                f"; cut off rather than rounded, {_k_text(self.fits_truncated)} gives {printed} (a window of one "
                f"printed unit holds {window:.2f} values k/{n} on average, so this is suggestive, not proof)"
            )
        return [f"k/{n} rounded to the printed {self._pct_digits} decimal(s) of a percentage: {text}"]

    def to_json(self) -> dict[str, Any]:
        return {
            "printed": self.printed,
            "test_cells": self.test_cells,
            "fits": self.fits,
            "is_ratio": self.state is RatioState.ROUNDED,
            "fits_truncated": self.fits_truncated,
            "nearest": {"k": self.nearest, "printed": self.nearest_printed},
            "basis": self.basis,
        }


def _k_text(ks: list[int]) -> str:
    if len(ks) == 1:
        return f"k = {ks[0]}"
    if ks == list(range(ks[0], ks[-1] + 1)):
        return f"k in {ks[0]}..{ks[-1]}"
    return f"k in {ks}"


# ------------------------------------------------------------------------------------------------ the audits


def audit_kfold(spec: Spec, tables: dict[str, TableFinding]) -> KFoldFinding:
    """The folds of a k-fold spec (Fig 4.9, Tables 4.9-4.13): their audited sizes N_i, the cells M they split
    (every fold floor/ceil(M/folds); M is their sum when every fold is printed) and the positives every fold
    can hold, given each fold's F1 range of P."""
    folds = spec.kfold.folds if spec.kfold else 5
    keys = sorted((k for k in spec.published.tables if k in tables), key=table_key_order)
    sizes = [tables[k].valid_size for k in keys]
    finding = KFoldFinding(
        tables=keys,
        fold_sizes=sizes,
        folds=folds,
        dataset_cells=published_dataset().cells("train"),
        class_shares=class_shares(),
    )
    if not finding.sizes_known:
        return finding
    known = [s for s in sizes if s is not None]
    candidates = [
        m
        for m in range(folds * min(known) - folds, folds * max(known) + folds + 1)
        if all(s in (m // folds, -(-m // folds)) for s in known)
    ]
    ranges = [tables[k].positives_range for k in keys]
    every_range = [r for r in ranges if r is not None]
    return replace(
        finding, cells_candidates=candidates, positives_ranges=every_range if len(every_range) == len(keys) else None
    )


def kfold_checks(spec: Spec, kfold: KFoldFinding) -> list[SpecCheck]:
    """``recipe.valid_size`` (a fraction for k-fold) against the folds a split of the training cells gives,
    and ``kfold.folds`` against the cells M the printed fold sizes split; none when a fold's size is unknown."""
    if not kfold.sizes_known:
        return []
    valid_size = spec.recipe.valid_size if spec.recipe else None
    cells = kfold.cells
    return [
        SpecCheck(
            spec.id,
            "recipe.valid_size",
            valid_size,
            kfold.sizes_text,
            Agreement.of(all(s in kfold.dataset_fold_sizes for s in kfold.fold_sizes)),
            note=kfold.sizes_note,
        ),
        SpecCheck(
            spec.id,
            "kfold.folds",
            kfold.folds,
            kfold.folds_text,
            Agreement.of(bool(kfold.cells_candidates) and (cells is None or cells in kfold.cells_candidates)),
        ),
    ]


def spec_checks(specs: dict[str, Spec], tables: dict[str, TableFinding], bayes: BayesFinding | None) -> list[SpecCheck]:
    """The specs' recipe fields against the audit: valid_size, f_beta.beta and f_beta.positive per table,
    and the Bayesian search's bounds, random_state, init_points and n_iter."""
    checks: list[SpecCheck] = []
    for spec in specs.values():
        keys = sorted((k for k in spec.published.tables if k in tables), key=table_key_order)
        if spec.recipe is None or not keys:
            continue
        if spec.kind == "kfold":
            checks.extend(kfold_checks(spec, audit_kfold(spec, tables)))
        for key in keys:
            t = tables[key]
            if spec.kind != "kfold":
                vs = spec.recipe.valid_size
                checks.append(
                    SpecCheck(spec.id, "recipe.valid_size", vs, t.valid_size, Agreement.of(vs == t.valid_size), key)
                )
            if t.beta_state is BetaState.NO_F_BETA_COLUMN:
                continue
            fb = spec.recipe.f_beta
            agrees = Agreement.of(fb.beta == t.beta, decidable=t.beta is not None)
            checks.append(SpecCheck(spec.id, "recipe.f_beta.beta", fb.beta, t.beta, agrees, key))
            cls = t.positive_class
            agrees = Agreement.of(fb.positive == cls, decidable=cls is not None)
            audit_value = cls or t.positive_text
            checks.append(SpecCheck(spec.id, "recipe.f_beta.positive", fb.positive, audit_value, agrees, key))
    if bayes is not None:
        spec = next((s for s in specs.values() if s.bayesian is not None and s.published.bayesian), None)
        if spec is not None and spec.bayesian is not None:
            for k in KEYS:
                b = spec.bayesian.bounds.get(k)
                sv = [b.low, b.high] if b else None
                av = list(bayes.bounds[k])
                checks.append(SpecCheck(spec.id, f"bayesian.bounds.{k}", sv, av, Agreement.of(sv == av)))
            for fld in ("random_state", "init_points", "n_iter"):
                sv = getattr(spec.bayesian, fld)
                av = getattr(bayes, fld)
                checks.append(SpecCheck(spec.id, f"bayesian.{fld}", sv, av, Agreement.of(sv == av, av is not None)))
    return checks


def audit_test_accuracy(printed: str, n: int | None = None) -> TestAccuracyFinding:
    """Which k/n print as a published test accuracy (sections 4.1.1-4.2.1 against the 1,867 test cells of
    section 3.1, or ``n``): rounded to the printed digits (``fits``) and, failing that, cut off
    (``fits_truncated``)."""
    n = n if n is not None else published_dataset().cells("prelim_test")
    return TestAccuracyFinding(
        printed=printed,
        test_cells=n,
        fits=ratio_fits(printed, n),
        fits_truncated=truncation_fits(printed, n),
        nearest=round(float(printed_value(printed)[0]) * n),
    )
