"""The table solver: validation size N, the F-beta's beta, the positives P and the confusion matrices of one
printed training table (Tables 4.1-4.4, 4.6-4.14), from its printed accuracy (and error_rate) and f_beta.

1. fastai printed ``accuracy`` as correct/N (a float32) to six digits, so the smallest N for which every
   accuracy of a table is some k/N is the table's validation size (:func:`fit_valid_size`).
2. fastai v1's ``FBeta`` is computed from the epoch's confusion matrix; with N known each epoch's errors
   are known, and whole TP/FP/FN reproducing the printed f_beta exist for one beta and one number of
   positives P only (:func:`solve_confusion`). That also gives the confusion matrices.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cnmc_repro.analysis.audit.findings import (
    BestFit,
    BetaState,
    Confusion,
    SharedSplit,
    SizeFit,
    TableFinding,
)
from cnmc_repro.analysis.audit.printed import accuracy_count, fbeta_rendering, printed_value, row_rendering
from cnmc_repro.spec.dataset import published_dataset
from cnmc_repro.spec.schema import PublishedTable, Spec

N_RANGE = (100, 12_600)  # validation sizes searched: anything up to beyond the 10,661 training cells
CLASS_TOLERANCE = 0.05  # P/N within this of a class's share of the training cells suggests that class
BETAS = (1, 2)  # Fig 4.9's FBeta(beta=1) and fastai v1's default FBeta(beta=2)
_PREFILTER_SLACK = 2e-7  # float prefilter window beyond the half unit; float32 quotients are within 6e-8


def class_shares() -> dict[str, float]:
    """Each class's share of the training cells (section 3.1: 3,389 normal and 7,272 ALL of 10,661)."""
    published = published_dataset()
    train = published.cells("train")
    return {label: published.cells("train", label=label) / train for label in ("normal", "ALL")}


def fit_valid_size(
    accuracies: list[str], error_rates: list[str] | None = None, n_range: tuple[int, int] = N_RANGE
) -> SizeFit:
    """The validation sizes N (in ``n_range``) for which every printed accuracy is some k/N.

    fastai v1 printed ``accuracy`` (and ``error_rate``) as a float32 correct/N to six digits; a row fits N
    when the rational k/N or its float32 quotient rounds to the printed digits. Multiples of a fitting N fit
    trivially (2k/2N); two fitting N that are not multiples of one another would make the answer ambiguous.

    The :class:`SizeFit` holds the smallest N fitting every row (``valid_size``, or None), all such N, the
    N fitting with the rational k/N alone (no float32 needed), the rows that fit ``valid_size`` only as a
    float32, and the N fitting most rows, exact or float32 (``best``) and rational alone (``best_exact``).
    """
    errs = error_rates if error_rates is not None else [None] * len(accuracies)
    ns = np.arange(n_range[0], n_range[1] + 1)
    any_ok = np.zeros((len(accuracies), len(ns)), dtype=bool)
    exact_ok = np.zeros_like(any_ok)
    for i, (acc, err) in enumerate(zip(accuracies, errs, strict=True)):
        value, digits = printed_value(acc)
        a = float(value)
        with np.errstate(all="ignore"):
            near = np.abs(np.rint(a * ns) / ns - a) <= 0.5 * 10.0**-digits + _PREFILTER_SLACK
        for j in np.flatnonzero(near):
            mode = row_rendering(int(ns[j]), acc, err)
            any_ok[i, j] = mode is not None
            exact_ok[i, j] = mode == "exact"

    def best_of(ok: np.ndarray) -> BestFit:
        counts = ok.sum(axis=0)
        j = int(np.argmax(counts))  # the first, so the smallest N among the best
        failing = [i for i in range(len(accuracies)) if not ok[i, j]]
        return BestFit(n=int(ns[j]), rows_fit=int(counts[j]), rows=len(accuracies), failing_rows=failing)

    candidates = [int(n) for n in ns[any_ok.all(axis=0)]] if accuracies else []
    exact_candidates = [int(n) for n in ns[exact_ok.all(axis=0)]] if accuracies else []
    smallest = candidates[0] if candidates else None
    float32_rows = []
    if smallest is not None:
        j = smallest - n_range[0]
        float32_rows = [i for i in range(len(accuracies)) if not exact_ok[i, j]]
    return SizeFit(
        valid_size=smallest,
        candidates=candidates,
        multiples=[n for n in candidates[1:] if smallest and n % smallest == 0],
        non_multiples=[n for n in candidates[1:] if smallest and n % smallest != 0],
        exact_candidates=exact_candidates,
        float32_rows=float32_rows,
        best=best_of(any_ok),
        best_exact=best_of(exact_ok),
        n_range=n_range,
    )


def _matrix(n: int, errors: int, positives: int, tp: int) -> Confusion | None:
    fn = positives - tp
    fp = errors - fn
    tn = n - tp - fp - fn
    if min(tp, fn, fp, tn) < 0:
        return None
    return Confusion(tp=tp, fp=fp, fn=fn, tn=tn)


def solve_confusion(n: int, correct: list[int], fbeta: list[str], beta: int) -> dict[int, list[Confusion]]:
    """Every number of positives P for which each epoch has a whole confusion matrix that prints its f_beta.

    With N cells, k correct (E = N - k errors) and P positives, FN = P - TP and FP = E - FN, so
    F = (1+b^2)TP / (2TP + (b^2-1)P + E) and TP = F((b^2-1)P + E) / (1 + b^2 - 2F). For beta=1 TP does not
    depend on P (TP = F*E / (2(1-F))) and P is bounded only by TP <= P <= TP + E and TN >= 0; for beta=2 a
    single P usually makes TP whole in every epoch. P is one per table: the validation set is fixed.
    Candidates are screened in floating point, then checked by recomputing F from the integers
    (:func:`fbeta_rendering`). Returns {P: [counts of each epoch]}.
    """
    b2 = beta * beta
    ps = np.arange(n + 1, dtype=float)
    alive = np.ones(n + 1, dtype=bool)
    for k, printed in zip(correct, fbeta, strict=True):
        errors = n - k
        value, digits = printed_value(printed)
        f = float(value)
        est = f * ((b2 - 1) * ps + errors) / (1 + b2 - 2 * f)
        ok = np.zeros(n + 1, dtype=bool)
        for d in (-1, 0, 1):
            tp = np.rint(est) + d
            fn = ps - tp
            fp = errors - fn
            tn = n - tp - fp - fn
            den = (1 + b2) * tp + b2 * fn + fp
            with np.errstate(all="ignore"):
                val = np.where(den > 0, (1 + b2) * tp / np.where(den > 0, den, 1), 0.0)
            valid = (tp >= 0) & (fn >= 0) & (fp >= 0) & (tn >= 0)
            ok |= valid & (np.abs(val - f) <= 0.5 * 10.0**-digits + _PREFILTER_SLACK)
        alive &= ok
    solutions: dict[int, list[Confusion]] = {}
    for p in (int(x) for x in np.flatnonzero(alive)):
        epochs = matrices_at(n, correct, fbeta, beta, p)
        if epochs is not None:
            solutions[p] = epochs
    return solutions


def matrices_at(n: int, correct: list[int], fbeta: list[str], beta: int, positives: int) -> list[Confusion] | None:
    """The confusion matrix of every epoch given N, the numbers correct, beta and the positives P, each one
    recomputing its printed f_beta (exact or as fastai's float32); None when some epoch has none."""
    b2 = beta * beta
    epochs = []
    for k, printed in zip(correct, fbeta, strict=True):
        errors = n - k
        f = float(printed_value(printed)[0])
        tp0 = round(f * ((b2 - 1) * positives + errors) / (1 + b2 - 2 * f))
        found = None
        for tp in (tp0, tp0 - 1, tp0 + 1):
            m = _matrix(n, errors, positives, tp)
            if m is not None and fbeta_rendering(m.tp, m.fp, m.fn, beta, printed):
                found = m
                break
        if found is None:
            return None
        epochs.append(found)
    return epochs


def suggest_class(fraction: float, shares: dict[str, float] | None = None) -> str | None:
    """The class whose share of the training cells (section 3.1: 7,272 ALL, 3,389 normal, ~2.15:1; or
    ``shares``) lies within CLASS_TOLERANCE of ``fraction``, or None."""
    for name, share in (shares or class_shares()).items():
        if abs(fraction - share) <= CLASS_TOLERANCE:
            return name
    return None


def audit_table(key: str, spec_id: str, table: PublishedTable, n_range: tuple[int, int] = N_RANGE) -> TableFinding:
    """Validation size, beta, positives and confusion matrices of one printed table (Tables 4.1-4.4, 4.6-4.14)."""
    rows = table.printed_rows()
    accuracies = [r["accuracy"] for r in rows]
    error_rates = [r["error_rate"] for r in rows] if "error_rate" in table.columns else None
    fbetas = [r["f_beta"] for r in rows] if "f_beta" in table.columns else None
    fit = fit_valid_size(accuracies, error_rates, n_range)
    n = fit.valid_size
    correct: list[int] | None = None
    if n is not None:
        counts = [accuracy_count(n, a) for a in accuracies]
        correct = [c[0] for c in counts if c is not None]  # every row fits n, so none is None

    beta = positives = positives_range = None
    fits: dict[int, dict[int, list[Confusion]]] = {}
    epochs: list[Confusion | None] = [None] * len(rows)
    true_positives: list[int | None] = [None] * len(rows)
    if fbetas is None:
        state = BetaState.NO_F_BETA_COLUMN
    elif n is None or correct is None:
        state = BetaState.VALID_SIZE_UNKNOWN
    else:
        fits = {b: solve_confusion(n, correct, fbetas, b) for b in BETAS}
        fitting = [b for b in BETAS if fits[b]]
        state = BetaState.ONE_FITS if len(fitting) == 1 else BetaState.SEVERAL_FIT if fitting else BetaState.NONE_FITS
        if state is BetaState.ONE_FITS:
            beta = fitting[0]
            ps = sorted(fits[beta])
            positives_range = [ps[0], ps[-1]]
            if len(ps) == 1:
                positives = ps[0]
                epochs = list(fits[beta][positives])
            per_epoch = [{sol[i].tp for sol in fits[beta].values()} for i in range(len(rows))]
            true_positives = [next(iter(s)) if len(s) == 1 else None for s in per_epoch]

    shares = class_shares()
    positive_class = compatible = None
    if positives is not None and n:
        positive_class = suggest_class(positives / n, shares)
    elif positives_range is not None and n:
        lo_f, hi_f = round(positives_range[0] / n, 6), round(positives_range[1] / n, 6)  # as the document has them
        compatible = [c for c, s in shares.items() if lo_f - CLASS_TOLERANCE <= s <= hi_f + CLASS_TOLERANCE]
        positive_class = compatible[0] if len(compatible) == 1 else None
    return TableFinding(
        key=key,
        spec=spec_id,
        caption=table.caption,
        rows=len(rows),
        has_error_rate=error_rates is not None,
        fit=fit,
        correct=correct,
        beta_state=state,
        positives_by_beta={b: sorted(fits[b]) for b in fits},
        beta=beta,
        positives=positives,
        positives_range=positives_range,
        positive_class=positive_class,
        compatible_classes=compatible,
        class_shares=shares,
        true_positives=true_positives,
        epochs=epochs,
    )


def table_key_order(key: str) -> tuple[int, ...]:
    """Sort key for report numbers: "4.2" before "4.10"."""
    return tuple(int(part) for part in key.split("."))


def shared_positives(specs: dict[str, Spec], tables: dict[str, TableFinding]) -> dict[str, TableFinding]:
    """Tables whose P is not identifiable (F1: Tables 4.4, 4.9-4.14) but whose N equals that of a table with
    a known P (Table 4.4 and Table 4.1 both have N=2793): if that P lies in the table's range, the matrices
    are given as ``epochs_if_shared``, under the assumption that both used the same validation split.
    Returns ``tables`` with those findings completed."""
    known = [(k, t) for k, t in tables.items() if t.positives is not None]
    out = dict(tables)
    for key, t in tables.items():
        if t.positives is not None or t.positives_range is None or t.beta is None:
            continue
        for other, o in known:
            if o.valid_size != t.valid_size or not t.positives_range[0] <= o.positives <= t.positives_range[1]:
                continue
            fbetas = [r["f_beta"] for r in specs[t.spec].published.tables[key].printed_rows()]
            epochs = matrices_at(t.valid_size, t.correct, fbetas, t.beta, o.positives)
            if epochs is None:
                continue
            out[key] = replace(t, shared=SharedSplit(table=other, positives=o.positives, epochs=epochs))
            break
    return out
