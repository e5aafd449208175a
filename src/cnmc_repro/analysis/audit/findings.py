"""The audit's findings on the printed tables and the spec checks, as typed records with explicit states, and
the prose users read, rendered from them.

The solvers return these records (``tables.audit_table`` a :class:`TableFinding`, ``checks.spec_checks``
:class:`SpecCheck` s); ``to_json()`` gives their part of the audit's JSON document (``python -m reproduce audit
--json``, read by the report's templates) with the keys, their order and the sentences it has always had. What
a finding is (one beta fits, no f_beta column, a spec field disagrees) is an enum; the notes and ``basis``
sentences are properties rendered from the state and the numbers alone, each in one place, so no sentence is
ever compared as state. The k-fold, test-accuracy and Bayesian records follow the same pattern beside their
solvers (``checks``, ``bayes``).

The document keeps a table's beta state only as its ``beta_note``; :meth:`BetaState.of` reads it back for the
views that work on the document (the report, the terminal view).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any


@dataclass(frozen=True)
class Confusion:
    """One epoch's confusion matrix, counted for the f_beta's positive class."""

    tp: int
    fp: int
    fn: int
    tn: int

    def to_json(self) -> dict[str, int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn}


def _json_epochs(epochs: list[Confusion | None]) -> list[dict[str, int] | None]:
    return [None if e is None else e.to_json() for e in epochs]


def _list_ints(ns: list[int], most: int = 6) -> str:
    text = ", ".join(str(n) for n in ns[:most])
    return text + (", ..." if len(ns) > most else "")


# ------------------------------------------------------------------------------------------------ validation size


@dataclass(frozen=True)
class BestFit:
    """The N fitting most rows of a table, and the rows it fails."""

    n: int
    rows_fit: int
    rows: int
    failing_rows: list[int]

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "rows_fit": self.rows_fit, "rows": self.rows, "failing_rows": self.failing_rows}


@dataclass(frozen=True)
class SizeFit:
    """The validation sizes N for which every printed accuracy of a table is some k/N (``tables.fit_valid_size``).

    ``valid_size`` is the smallest (None: none fits), ``candidates`` all of them, split into ``multiples`` and
    ``non_multiples`` of the smallest; ``exact_candidates`` fit with the rational k/N alone, ``float32_rows``
    fit ``valid_size`` only as a float32 quotient; ``best`` and ``best_exact`` are the N fitting most rows."""

    valid_size: int | None
    candidates: list[int]
    multiples: list[int]
    non_multiples: list[int]
    exact_candidates: list[int]
    float32_rows: list[int]
    best: BestFit
    best_exact: BestFit
    n_range: tuple[int, int]  # the N searched


# ------------------------------------------------------------------------------------------------ tables


class BetaState(Enum):
    """What a table's f_beta column says about the F-beta's beta (fastai's FBeta(beta=1) or FBeta(beta=2))."""

    NO_F_BETA_COLUMN = auto()  # the table prints no f_beta (Table 4.6)
    VALID_SIZE_UNKNOWN = auto()  # no N fits every printed accuracy, so the errors per epoch are unknown
    ONE_FITS = auto()  # whole TP/FP/FN/TN print every f_beta for exactly one beta
    SEVERAL_FIT = auto()  # ... for more than one beta
    NONE_FITS = auto()  # ... for no beta tried

    @classmethod
    def of(cls, table: Mapping[str, Any]) -> BetaState:
        """The state of a table of the audit's JSON document: the betas that fit tell one from several; where
        none fits, the document holds the state only as its note, which is one fixed sentence per state."""
        fitting = table["betas_fitting"]
        if len(fitting) == 1:
            return cls.ONE_FITS
        if fitting:
            return cls.SEVERAL_FIT
        return {note: state for state, note in _FIXED_BETA_NOTES.items()}[table["beta_note"]]


_FIXED_BETA_NOTES = {
    BetaState.NO_F_BETA_COLUMN: "no f_beta column",
    BetaState.VALID_SIZE_UNKNOWN: "validation size unknown",
    BetaState.NONE_FITS: "neither beta=1 nor beta=2 gives whole confusion matrices for every epoch",
}


@dataclass(frozen=True)
class SharedSplit:
    """A table's confusion matrices under the positives P of another table with the same N (Table 4.4 under
    Table 4.1's split), if both used one validation split."""

    table: str
    positives: int
    epochs: list[Confusion]

    def to_json(self) -> dict[str, Any]:
        return {"table": self.table, "positives": self.positives, "epochs": _json_epochs(self.epochs)}


@dataclass(frozen=True)
class TableFinding:
    """Validation size, beta, positives and confusion matrices of one printed table (``tables.audit_table``).

    ``positives_by_beta`` holds, for each beta tried, every P for which each epoch has whole TP/FP/FN/TN
    printing its f_beta (empty without an f_beta column or a validation size). ``positive_class`` is the class
    whose share of the training cells (``class_shares``) P/N matches; ``compatible_classes`` the classes a
    range of P/N allows (None when P is known or unbounded)."""

    key: str
    spec: str
    caption: str
    rows: int
    has_error_rate: bool
    fit: SizeFit
    correct: list[int] | None
    beta_state: BetaState
    positives_by_beta: dict[int, list[int]]
    beta: int | None
    positives: int | None
    positives_range: list[int] | None
    positive_class: str | None
    compatible_classes: list[str] | None
    class_shares: dict[str, float]
    true_positives: list[int | None]
    epochs: list[Confusion | None]
    shared: SharedSplit | None = None

    @property
    def valid_size(self) -> int | None:
        return self.fit.valid_size

    @property
    def errors(self) -> list[int] | None:
        n = self.valid_size
        return [n - k for k in self.correct] if self.correct is not None and n is not None else None

    @property
    def betas_fitting(self) -> list[int]:
        return [b for b, ps in self.positives_by_beta.items() if ps]

    @property
    def positive_fraction(self) -> float | None:
        if self.positives is not None and self.valid_size:
            return round(self.positives / self.valid_size, 6)
        return None

    @property
    def positive_fraction_range(self) -> list[float] | None:
        n = self.valid_size
        if self.positives is None and self.positives_range is not None and n:
            return [round(self.positives_range[0] / n, 6), round(self.positives_range[1] / n, 6)]
        return None

    @property
    def _what(self) -> str:
        return "accuracy and error_rate" if self.has_error_rate else "accuracy"

    @property
    def valid_size_note(self) -> str:
        fit, n, (lo, hi) = self.fit, self.valid_size, self.fit.n_range
        if n is None:
            best = fit.best
            return (
                f"no N in {lo}..{hi} makes every printed {self._what} of Table {self.key} a k/N; N={best.n} fits "
                f"{best.rows_fit} of {best.rows} rows (failing rows {best.failing_rows})"
            )
        note = f"N={n} is the smallest of {lo}..{hi} for which every printed {self._what} is k/N to six digits"
        if fit.multiples:
            note += f"; its multiples {_list_ints(fit.multiples)} fit too (2k/2N is k/N)"
        if fit.non_multiples:
            note += f"; AMBIGUOUS: {_list_ints(fit.non_multiples)} fit and are not multiples of {n}"
        else:
            note += "; no other N fits: unique up to multiples"
        if fit.float32_rows:
            be = fit.best_exact
            note += f"; row(s) {fit.float32_rows} fit only as fastai's float32 quotient, not as the rational k/N"
            if not fit.exact_candidates:
                note += (
                    f" (with the rational alone no N fits every row: N={be.n} fits {be.rows_fit} of "
                    f"{be.rows}, failing rows {be.failing_rows})"
                )
        return note

    @property
    def beta_note(self) -> str:
        if self.beta_state is BetaState.ONE_FITS:
            return f"only beta={self.beta} gives whole TP/FP/FN/TN for every epoch at N={self.valid_size}"
        if self.beta_state is BetaState.SEVERAL_FIT:
            return f"undetermined: beta {self.betas_fitting} all give whole confusion matrices"
        return _FIXED_BETA_NOTES[self.beta_state]

    @property
    def basis(self) -> list[str]:
        """What the finding rests on, one sentence per step."""
        lo, hi = self.fit.n_range
        n, key = self.valid_size, self.key
        basis = [
            f"fastai v1 prints {self._what} as a float32 correct/N to six digits; searched N = {lo}..{hi} with "
            f"every row's k/N (rational or float32 quotient) rounded to the printed digits: {self.valid_size_note}"
        ]
        if self.beta_state is BetaState.NO_F_BETA_COLUMN:
            basis.append(f"Table {key} prints no f_beta: beta, positives and confusion matrices cannot be inferred")
        for b, ps in self.positives_by_beta.items():
            what_p = f"P={ps[0]}" if len(ps) == 1 else (f"P in {ps[0]}..{ps[-1]} ({len(ps)} values)" if ps else "no P")
            basis.append(
                f"beta={b}: F = (1+b^2)TP/(2TP+(b^2-1)P+E) with E = N - correct; whole TP/FP/FN/TN reproducing "
                f"every printed f_beta of Table {key} at 6 digits (recomputed from the integers, exact or as "
                f"fastai's float32): {what_p}"
            )
        shares = ", ".join(f"{c} {s:.3f}" for c, s in self.class_shares.items())
        frac_range = self.positive_fraction_range
        if self.positives is not None and n:
            cls = self.positive_class
            basis.append(
                f"P/N = {self.positives}/{n} = {self.positives / n:.3f}; the training cells' class shares are "
                f"{shares} (section 3.1): "
                + (f"the positive class looks like {cls}" if cls else "P/N matches neither class share")
            )
        elif frac_range is not None:
            inside = self.compatible_classes or []
            basis.append(
                f"F1 gives TP but not P: P/N lies in {frac_range[0]:.3f}..{frac_range[1]:.3f}; class shares {shares}: "
                + (f"only {inside[0]} is compatible" if len(inside) == 1 else f"compatible with {inside or 'neither'}")
            )
        if any(e is not None for e in self.epochs):
            basis.append(
                f"confusion matrices from N={n}, beta={self.beta}, P={self.positives}: TP from f_beta, FN = P - TP, "
                "FP = E - FN, TN = N - TP - FP - FN; each prints the epoch's accuracy and f_beta"
            )
        if self.shared is not None:
            s, (p_lo, p_hi) = self.shared, self.positives_range
            basis.append(
                f"Table {s.table} has the same N={n} and P={s.positives}, inside this table's range "
                f"{p_lo}..{p_hi}: if both used one validation split, epochs_if_shared gives this table's confusion "
                "matrices"
            )
        return basis

    @property
    def positive_text(self) -> str | None:
        """Why P/N names no class, as a spec check's audit value (None when nothing is known of P)."""
        shares = "/".join(f"{v:.3f}" for v in self.class_shares.values())
        if self.positive_fraction_range:
            lo, hi = self.positive_fraction_range
            return f"P/N in {lo:.3f}..{hi:.3f}: no single class share (normal/ALL {shares}) fits"
        if self.positive_fraction is not None:
            return f"P/N = {self.positive_fraction:.3f} matches neither class share (normal/ALL {shares})"
        return None

    def to_json(self) -> dict[str, Any]:
        fit = self.fit
        doc = {
            "spec": self.spec,
            "caption": self.caption,
            "rows": self.rows,
            "valid_size": self.valid_size,
            "valid_size_candidates": fit.candidates,
            "valid_size_unique": bool(self.valid_size is not None and not fit.non_multiples),
            "valid_size_exact": fit.exact_candidates[0] if fit.exact_candidates else None,
            "float32_rows": fit.float32_rows,
            "best_fit": fit.best.to_json(),
            "best_exact_fit": fit.best_exact.to_json(),
            "valid_size_note": self.valid_size_note,
            "correct": self.correct,
            "errors": self.errors,
            "beta_note": self.beta_note,
            "beta": self.beta,
            "betas_fitting": self.betas_fitting,
            "positives": self.positives,
            "positives_range": self.positives_range,
            "positive_fraction": self.positive_fraction,
            "positive_fraction_range": self.positive_fraction_range,
            "positive_class": self.positive_class,
            "true_positives": self.true_positives,
            "epochs": _json_epochs(self.epochs),
            "basis": self.basis,
        }
        if self.shared is not None:
            doc["epochs_if_shared"] = self.shared.to_json()
        return doc


# ------------------------------------------------------------------------------------------------ spec checks


class Agreement(Enum):
    """A spec field against the audit; the value is the document's ``agrees`` (true, false, null)."""

    AGREES = True
    DISAGREES = False
    UNDECIDABLE = None

    @classmethod
    def of(cls, same: bool, decidable: bool = True) -> Agreement:
        if not decidable:
            return cls.UNDECIDABLE
        return cls.AGREES if same else cls.DISAGREES

    @classmethod
    def group(cls, checks: list[Mapping[str, Any]]) -> dict[Agreement, list[Mapping[str, Any]]]:
        """The spec checks of the audit's JSON document by their agreement, in their order."""
        groups: dict[Agreement, list[Mapping[str, Any]]] = {a: [] for a in cls}
        for c in checks:
            groups[cls(c["agrees"])].append(c)
        return groups


@dataclass(frozen=True)
class SpecCheck:
    """One spec field (``field``, dotted) beside what the audit finds for it (a value or a description)."""

    spec: str
    field: str
    spec_value: Any
    audit_value: Any
    agreement: Agreement
    table: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {
            "spec": self.spec,
            "field": self.field,
            "spec_value": self.spec_value,
            "audit_value": self.audit_value,
            "agrees": self.agreement.value,
        }
        if self.table is not None:
            doc["table"] = self.table
        if self.note is not None:
            doc["note"] = self.note
        return doc
