"""Audit of the printed figures of chapter 4: what the numbers say beyond what they show.

The report prints fastai v1 training tables (Tables 4.1-4.4, 4.6-4.14), the bayes_opt log of Fig 4.12 and
four test accuracies, but not the validation-set sizes, the F-beta's beta and positive class, the confusion
matrices, nor the bounds and seed of the Bayesian search. The printed digits pin most of them down:

1. fastai printed ``accuracy`` as correct/N (a float32) to six digits, so the smallest N for which every
   accuracy of a table is some k/N is the table's validation size (:func:`fit_valid_size`).
2. fastai v1's ``FBeta`` is computed from the epoch's confusion matrix; with N known each epoch's errors
   are known, and whole TP/FP/FN reproducing the printed f_beta exist for one beta and one number of
   positives P only (:func:`solve_confusion`). That also gives the confusion matrices.
3. bayes_opt draws its first probes uniformly from the bounds with ``RandomState(random_state)``; the
   bounds are the extremes of the probes that sit on them (Fig 4.12, iterations 6-10) and the seed is
   found by search (:func:`search_random_state`). The guided probes are asked of bayes_opt 3.4 again
   (:func:`guided_proposals`).
4. The test accuracies are checked against the 1,867 cells of the test set (:func:`ratio_fits`).

Every finding carries a ``basis``: what it rests on. :func:`audit` builds the JSON document,
:func:`format_audit` renders it for a terminal. Nothing here needs torch.
"""

from __future__ import annotations

import math
import warnings
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np

from cnmc_repro.run import bayesian
from cnmc_repro.spec.schema import BayesIteration, PublishedTable, Spec

TRAIN_CELLS = 10_661  # report section 3.1: training cells
TRAIN_ALL = 7_272  # of which ALL (section 3.1)
TRAIN_NORMAL = 3_389  # of which normal (section 3.1)
TEST_CELLS = 1_867  # report section 3.1: the test (preliminary test) set
N_RANGE = (100, 12_600)  # validation sizes searched: anything up to beyond the 10,661 training cells
FASTAI_EPS = 1e-9  # fastai v1 CMScores.eps, added to the F-beta's denominator
CLASS_TOLERANCE = 0.05  # P/N within this of a class's share of the training cells suggests that class
BETAS = (1, 2)  # Fig 4.9's FBeta(beta=1) and fastai v1's default FBeta(beta=2)
BAYES_KEYS = ("dp", "lr", "wd")  # Fig 4.12's parameters, in bayes_opt's order (sorted in 1.x, as given in 3.x)
SEED_RANGE = (0, 10_000)  # random_state values searched
UCB_KAPPA = 2.576  # bayes_opt 1.x's default acquisition: UCB with kappa 2.576
_PREFILTER_SLACK = 2e-7  # float prefilter window beyond the half unit; float32 quotients are within 6e-8

CLASS_SHARES = {"normal": TRAIN_NORMAL / TRAIN_CELLS, "ALL": TRAIN_ALL / TRAIN_CELLS}

GUIDED_SETTINGS = {
    "bayes_opt3_ucb_centred": (
        "bayes_opt 3.4, UCB kappa=2.576 (bayes_opt 1.x's default), the GP fitted on targets centred but not "
        "scaled (scikit-learn < 0.23's normalize_y, as in 2019), one RandomState(random_state) shared by the "
        "GP fits and the acquisition search (bayes_opt 1.x kept the random probes' generator apart)"
    ),
    "bayes_opt3_default": (
        "bayes_opt 3.4 defaults: UCB kappa=2.576, the GP with normalize_y=True (scikit-learn >= 0.23 also "
        "divides the targets by their standard deviation), one RandomState(random_state) as above"
    ),
    "bayes_opt1_emulated": (
        "bayes_opt 1.x's acq_max written out here (10,000 random tries, then L-BFGS-B from 10 fresh random "
        "seeds, UCB kappa=2.576) on the centred GP, one RandomState(random_state) as above"
    ),
}
PRIMARY_SETTING = "bayes_opt3_ucb_centred"


# ------------------------------------------------------------------------------------------------ printed numbers


def printed_value(printed: str) -> tuple[Fraction, int]:
    """The exact value of a printed figure and its number of decimals as a fraction.

    ``"0.847118"`` -> (847118/10**6, 6); a percentage counts as a fraction: ``"75.46%"`` -> (7546/10**4, 4).
    """
    text = printed.strip()
    percent = text.endswith("%")
    if percent:
        text = text[:-1]
    value = Decimal(text)
    digits = max(0, -value.as_tuple().exponent)
    if percent:
        return Fraction(value) / 100, digits + 2
    return Fraction(value), digits


def renders(value: float | Fraction, printed: str) -> bool:
    """True when ``value`` rounds to ``printed`` at the printed number of digits (a tie counts either way)."""
    target, digits = printed_value(printed)
    return abs(Fraction(value) - target) <= Fraction(1, 2 * 10**digits)


def ratio_rendering(k: int, n: int, printed: str) -> str | None:
    """How k/n can print as ``printed``: ``"exact"`` (the rational k/n rounds to it), ``"float32"`` (only the
    float32 quotient does: fastai v1's metrics are float32 tensors) or None."""
    if n <= 0 or not 0 <= k <= n:
        return None
    if renders(Fraction(k, n), printed):
        return "exact"
    if renders(float(np.float32(k) / np.float32(n)), printed):
        return "float32"
    return None


def truncates_to(value: float | Fraction, printed: str) -> bool:
    """True when ``value`` cut off (not rounded) after the printed number of digits gives ``printed``."""
    target, digits = printed_value(printed)
    scale = 10**digits
    return Fraction(math.floor(Fraction(value) * scale), scale) == target


def truncation_fits(printed: str, n: int) -> list[int]:
    """Every k for which k/n, cut off after the printed digits, gives ``printed`` (a percentage printed by
    slicing or flooring rather than rounding)."""
    value, digits = printed_value(printed)
    lo = math.floor(value * n) - 1
    hi = math.ceil((value + Fraction(1, 10**digits)) * n) + 1
    return [k for k in range(max(0, lo), min(n, hi) + 1) if truncates_to(Fraction(k, n), printed)]


def ratio_fits(printed: str, n: int) -> list[int]:
    """Every k for which k/n prints as ``printed`` (exactly or as a float32), e.g. the test accuracies of
    sections 4.1.1-4.2.1 against the 1,867 test cells."""
    value, digits = printed_value(printed)
    lo = math.floor((value - Fraction(1, 2 * 10**digits)) * n) - 1
    hi = math.ceil((value + Fraction(1, 2 * 10**digits)) * n) + 1
    return [k for k in range(max(0, lo), min(n, hi) + 1) if ratio_rendering(k, n, printed)]


# ------------------------------------------------------------------------------------------------ F-beta


def fbeta_exact(tp: int, fp: int, fn: int, beta: float) -> Fraction:
    """F-beta of a confusion matrix as a rational: (1+b^2)TP / ((1+b^2)TP + b^2 FN + FP); 0 when undefined."""
    b2 = Fraction(beta) ** 2
    den = (1 + b2) * tp + b2 * fn + fp
    return (1 + b2) * tp / den if den else Fraction(0)


def fbeta_fastai(tp: int, fp: int, fn: int, beta: float) -> float:
    """F-beta as fastai v1's ``FBeta.on_epoch_end`` computed it in float32 from its float32 confusion matrix:
    ``(1+b2)*prec*rec / (prec*b2 + rec + eps)`` with prec = TP/(TP+FP), rec = TP/(TP+FN); NaN becomes 0."""
    f32 = np.float32
    with np.errstate(all="ignore"):
        tp32 = f32(tp)
        prec = tp32 / f32(tp + fp)
        rec = tp32 / f32(tp + fn)
        b2 = f32(beta * beta)
        metric = (f32(1) + b2) * prec * rec / (prec * b2 + rec + f32(FASTAI_EPS))
    return 0.0 if math.isnan(metric) else float(metric)


def fbeta_rendering(tp: int, fp: int, fn: int, beta: float, printed: str) -> str | None:
    """How a confusion matrix's F-beta can print as ``printed``: ``"exact"``, ``"float32"`` (fastai's float32
    arithmetic, :func:`fbeta_fastai`) or None."""
    if renders(fbeta_exact(tp, fp, fn, beta), printed):
        return "exact"
    if renders(fbeta_fastai(tp, fp, fn, beta), printed):
        return "float32"
    return None


def counts_reproduce(counts: dict[str, int], accuracy: str, fbeta: str | None, beta: float | None) -> bool:
    """True when a confusion matrix prints the table's accuracy and (if given) f_beta, as fastai would."""
    n = counts["tp"] + counts["fp"] + counts["fn"] + counts["tn"]
    if ratio_rendering(counts["tp"] + counts["tn"], n, accuracy) is None:
        return False
    if fbeta is None:
        return True
    return beta is not None and fbeta_rendering(counts["tp"], counts["fp"], counts["fn"], beta, fbeta) is not None


# ------------------------------------------------------------------------------------------------ validation size


def accuracy_count(n: int, printed: str) -> tuple[int, str] | None:
    """The number correct k and how k/n prints as ``printed`` (exact preferred), or None when no k fits."""
    value, _ = printed_value(printed)
    k0 = round(float(value) * n)
    found = [(k, m) for k in (k0 - 1, k0, k0 + 1) if (m := ratio_rendering(k, n, printed))]
    found.sort(key=lambda km: km[1] != "exact")
    return found[0] if found else None


def row_rendering(n: int, accuracy: str, error_rate: str | None = None) -> str | None:
    """How one printed row fits validation size n: its accuracy is k/n and its error_rate (Table 4.6) is
    (n-k)/n. ``"exact"``, ``"float32"`` or None."""
    found = accuracy_count(n, accuracy)
    if found is None:
        return None
    k, mode = found
    if error_rate is not None:
        err_mode = ratio_rendering(n - k, n, error_rate)
        if err_mode is None:
            return None
        if err_mode != "exact":
            mode = err_mode
    return mode


def fit_valid_size(
    accuracies: list[str], error_rates: list[str] | None = None, n_range: tuple[int, int] = N_RANGE
) -> dict[str, Any]:
    """The validation sizes N (in ``n_range``) for which every printed accuracy is some k/N.

    fastai v1 printed ``accuracy`` (and ``error_rate``) as a float32 correct/N to six digits; a row fits N
    when the rational k/N or its float32 quotient rounds to the printed digits. Multiples of a fitting N fit
    trivially (2k/2N); two fitting N that are not multiples of one another would make the answer ambiguous.

    Returns ``valid_size`` (the smallest N fitting every row, or None), ``candidates`` (all such N),
    ``multiples`` and ``non_multiples`` of the smallest, ``exact_candidates`` (N fitting every row with the
    rational k/N, no float32 needed), ``float32_rows`` (rows that fit ``valid_size`` only as a float32),
    ``best`` (the N fitting most rows and the rows it fails, exact or float32) and ``best_exact`` (the same
    for the rational k/N alone).
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

    def best_of(ok: np.ndarray) -> dict[str, Any]:
        counts = ok.sum(axis=0)
        j = int(np.argmax(counts))  # the first, so the smallest N among the best
        return {
            "n": int(ns[j]),
            "rows_fit": int(counts[j]),
            "rows": len(accuracies),
            "failing_rows": [i for i in range(len(accuracies)) if not ok[i, j]],
        }

    candidates = [int(n) for n in ns[any_ok.all(axis=0)]] if accuracies else []
    exact_candidates = [int(n) for n in ns[exact_ok.all(axis=0)]] if accuracies else []
    smallest = candidates[0] if candidates else None
    out: dict[str, Any] = {
        "valid_size": smallest,
        "candidates": candidates,
        "multiples": [n for n in candidates[1:] if smallest and n % smallest == 0],
        "non_multiples": [n for n in candidates[1:] if smallest and n % smallest != 0],
        "exact_candidates": exact_candidates,
        "float32_rows": [],
        "best": best_of(any_ok),
        "best_exact": best_of(exact_ok),
        "range": list(n_range),
    }
    if smallest is not None:
        j = smallest - n_range[0]
        out["float32_rows"] = [i for i in range(len(accuracies)) if not exact_ok[i, j]]
    return out


# ------------------------------------------------------------------------------------------------ confusion matrices


def _matrix(n: int, errors: int, positives: int, tp: int) -> dict[str, int] | None:
    fn = positives - tp
    fp = errors - fn
    tn = n - tp - fp - fn
    if min(tp, fn, fp, tn) < 0:
        return None
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def solve_confusion(n: int, correct: list[int], fbeta: list[str], beta: int) -> dict[int, list[dict[str, int]]]:
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
    solutions: dict[int, list[dict[str, int]]] = {}
    for p in (int(x) for x in np.flatnonzero(alive)):
        epochs = matrices_at(n, correct, fbeta, beta, p)
        if epochs is not None:
            solutions[p] = epochs
    return solutions


def matrices_at(n: int, correct: list[int], fbeta: list[str], beta: int, positives: int) -> list[dict[str, int]] | None:
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
            if m is not None and fbeta_rendering(m["tp"], m["fp"], m["fn"], beta, printed):
                found = m
                break
        if found is None:
            return None
        epochs.append(found)
    return epochs


def suggest_class(fraction: float) -> str | None:
    """The class whose share of the training cells (section 3.1: 7,272 ALL, 3,389 normal, ~2.15:1) lies
    within CLASS_TOLERANCE of ``fraction``, or None."""
    for name, share in CLASS_SHARES.items():
        if abs(fraction - share) <= CLASS_TOLERANCE:
            return name
    return None


# ------------------------------------------------------------------------------------------------ tables


def _cells(table: PublishedTable) -> list[dict[str, str]]:
    rows = []
    for line in table.rows:
        cells = line.split()
        rows.append(dict(zip(table.columns, cells, strict=True)))
    return rows


def _list_ints(ns: list[int], most: int = 6) -> str:
    text = ", ".join(str(n) for n in ns[:most])
    return text + (", ..." if len(ns) > most else "")


def audit_table(key: str, spec_id: str, table: PublishedTable, n_range: tuple[int, int] = N_RANGE) -> dict[str, Any]:
    """Validation size, beta, positives and confusion matrices of one printed table (Tables 4.1-4.4, 4.6-4.14)."""
    rows = _cells(table)
    accuracies = [r["accuracy"] for r in rows]
    error_rates = [r["error_rate"] for r in rows] if "error_rate" in table.columns else None
    fbetas = [r["f_beta"] for r in rows] if "f_beta" in table.columns else None
    fit = fit_valid_size(accuracies, error_rates, n_range)
    n = fit["valid_size"]
    basis: list[str] = []
    entry: dict[str, Any] = {
        "spec": spec_id,
        "caption": table.caption,
        "rows": len(rows),
        "valid_size": n,
        "valid_size_candidates": fit["candidates"],
        "valid_size_unique": bool(n is not None and not fit["non_multiples"]),
        "valid_size_exact": fit["exact_candidates"][0] if fit["exact_candidates"] else None,
        "float32_rows": fit["float32_rows"],
        "best_fit": fit["best"],
        "best_exact_fit": fit["best_exact"],
    }
    what = "accuracy and error_rate" if error_rates else "accuracy"
    lo, hi = n_range
    if n is None:
        best = fit["best"]
        note = (
            f"no N in {lo}..{hi} makes every printed {what} of Table {key} a k/N; N={best['n']} fits "
            f"{best['rows_fit']} of {best['rows']} rows (failing rows {best['failing_rows']})"
        )
    else:
        note = f"N={n} is the smallest of {lo}..{hi} for which every printed {what} is k/N to six digits"
        if fit["multiples"]:
            note += f"; its multiples {_list_ints(fit['multiples'])} fit too (2k/2N is k/N)"
        if fit["non_multiples"]:
            note += f"; AMBIGUOUS: {_list_ints(fit['non_multiples'])} fit and are not multiples of {n}"
        else:
            note += "; no other N fits: unique up to multiples"
        if fit["float32_rows"]:
            be = fit["best_exact"]
            note += f"; row(s) {fit['float32_rows']} fit only as fastai's float32 quotient, not as the rational k/N"
            if not fit["exact_candidates"]:
                note += (
                    f" (with the rational alone no N fits every row: N={be['n']} fits {be['rows_fit']} of "
                    f"{be['rows']}, failing rows {be['failing_rows']})"
                )
    entry["valid_size_note"] = note
    basis.append(
        f"fastai v1 prints {what} as a float32 correct/N to six digits; searched N = {lo}..{hi} with every "
        f"row's k/N (rational or float32 quotient) rounded to the printed digits: {note}"
    )
    correct: list[int] | None = None
    if n is not None:
        counts = [accuracy_count(n, a) for a in accuracies]
        correct = [c[0] for c in counts if c is not None]  # every row fits n, so none is None
    entry["correct"] = correct
    entry["errors"] = [n - k for k in correct] if correct is not None and n is not None else None

    beta = positives = None
    fits: dict[int, dict[int, list[dict[str, int]]]] = {}
    epochs: list[dict[str, int] | None] = [None] * len(rows)
    true_positives: list[int | None] = [None] * len(rows)
    positives_range = None
    if fbetas is None:
        entry["beta_note"] = "no f_beta column"
        basis.append(f"Table {key} prints no f_beta: beta, positives and confusion matrices cannot be inferred")
    elif n is None or correct is None:
        entry["beta_note"] = "validation size unknown"
    else:
        for b in BETAS:
            fits[b] = solve_confusion(n, correct, fbetas, b)
        fitting = [b for b in BETAS if fits[b]]
        if len(fitting) == 1:
            beta = fitting[0]
            entry["beta_note"] = f"only beta={beta} gives whole TP/FP/FN/TN for every epoch at N={n}"
        elif fitting:
            entry["beta_note"] = f"undetermined: beta {fitting} all give whole confusion matrices"
        else:
            entry["beta_note"] = "neither beta=1 nor beta=2 gives whole confusion matrices for every epoch"
        for b in BETAS:
            ps = sorted(fits[b])
            what_p = f"P={ps[0]}" if len(ps) == 1 else (f"P in {ps[0]}..{ps[-1]} ({len(ps)} values)" if ps else "no P")
            basis.append(
                f"beta={b}: F = (1+b^2)TP/(2TP+(b^2-1)P+E) with E = N - correct; whole TP/FP/FN/TN reproducing "
                f"every printed f_beta of Table {key} at 6 digits (recomputed from the integers, exact or as "
                f"fastai's float32): {what_p}"
            )
        if beta is not None:
            ps = sorted(fits[beta])
            positives_range = [ps[0], ps[-1]]
            if len(ps) == 1:
                positives = ps[0]
                epochs = list(fits[beta][positives])
            per_epoch = [{sol[i]["tp"] for sol in fits[beta].values()} for i in range(len(rows))]
            true_positives = [next(iter(s)) if len(s) == 1 else None for s in per_epoch]
    entry["beta"] = beta
    entry["betas_fitting"] = [b for b in BETAS if fits.get(b)]
    entry["positives"] = positives
    entry["positives_range"] = positives_range
    frac = None
    if positives is not None and n:
        frac = positives / n
        entry["positive_fraction"] = round(frac, 6)
        entry["positive_fraction_range"] = None
    elif positives_range is not None and n:
        entry["positive_fraction"] = None
        entry["positive_fraction_range"] = [round(positives_range[0] / n, 6), round(positives_range[1] / n, 6)]
    else:
        entry["positive_fraction"] = None
        entry["positive_fraction_range"] = None
    shares = ", ".join(f"{c} {s:.3f}" for c, s in CLASS_SHARES.items())
    if frac is not None:
        cls = suggest_class(frac)
        entry["positive_class"] = cls
        basis.append(
            f"P/N = {positives}/{n} = {frac:.3f}; the training cells' class shares are {shares} (section 3.1): "
            + (f"the positive class looks like {cls}" if cls else "P/N matches neither class share")
        )
    elif entry["positive_fraction_range"] is not None:
        lo_f, hi_f = entry["positive_fraction_range"]
        inside = [c for c, s in CLASS_SHARES.items() if lo_f - CLASS_TOLERANCE <= s <= hi_f + CLASS_TOLERANCE]
        entry["positive_class"] = inside[0] if len(inside) == 1 else None
        basis.append(
            f"F1 gives TP but not P: P/N lies in {lo_f:.3f}..{hi_f:.3f}; class shares {shares}: "
            + (f"only {inside[0]} is compatible" if len(inside) == 1 else f"compatible with {inside or 'neither'}")
        )
    else:
        entry["positive_class"] = None
    entry["true_positives"] = true_positives
    entry["epochs"] = epochs
    if any(e is not None for e in epochs):
        basis.append(
            f"confusion matrices from N={n}, beta={beta}, P={positives}: TP from f_beta, FN = P - TP, "
            "FP = E - FN, TN = N - TP - FP - FN; each prints the epoch's accuracy and f_beta"
        )
    entry["basis"] = basis
    return entry


def table_key_order(key: str) -> tuple[int, ...]:
    """Sort key for report numbers: "4.2" before "4.10"."""
    return tuple(int(part) for part in key.split("."))


# ------------------------------------------------------------------------------------------------ Bayesian search


def _probe_values(it: BayesIteration) -> dict[str, str]:
    return {k: getattr(it, k) for k in BAYES_KEYS}


def infer_bounds(published: list[BayesIteration]) -> dict[str, tuple[float, float]]:
    """Each parameter's bounds as the smallest and largest printed value (Fig 4.12). The guided probes
    (iterations 6-10) sit on the bounds, so the extremes are the bounds; the random draws confirm it."""
    return {
        k: (min(float(getattr(p, k)) for p in published), max(float(getattr(p, k)) for p in published))
        for k in BAYES_KEYS
    }


def on_bounds(published: list[BayesIteration], bounds: dict[str, tuple[float, float]]) -> dict[str, list[int]]:
    """The iterations whose printed value of each parameter is one of its bounds."""
    return {k: [p.index for p in published if float(getattr(p, k)) in bounds[k]] for k in BAYES_KEYS}


def _draws(random_state: int, bounds: dict[str, tuple[float, float]], n_points: int) -> list[dict[str, float]]:
    """bayes_opt's random probes, drawn as the engine draws them (``bayesian.random_probes``)."""
    return bayesian.random_probes(bounds, random_state, n_points)


def leading_random_probes(
    published: list[BayesIteration], bounds: dict[str, tuple[float, float]], random_state: int
) -> int:
    """How many leading probes of Fig 4.12 equal the random draws of ``random_state`` digit for digit."""
    draws = _draws(random_state, bounds, len(published))
    count = 0
    for p, d in zip(published, draws, strict=True):
        if any(repr(d[k]) != getattr(p, k) for k in BAYES_KEYS):
            break
        count += 1
    return count


def search_random_state(
    published: list[BayesIteration],
    bounds: dict[str, tuple[float, float]],
    states: tuple[int, int] = SEED_RANGE,
) -> list[int]:
    """Every random_state in ``states`` whose first draw equals the first printed probe digit for digit
    (the repr of the float against the printed string), all three parameters."""
    first = _probe_values(published[0])
    hits = []
    for seed in range(states[0], states[1] + 1):
        rng = np.random.RandomState(seed)
        if all(repr(float(rng.uniform(*bounds[k], 1)[0])) == first[k] for k in BAYES_KEYS):
            hits.append(seed)
    return hits


def bayes_opt_random_probes(
    bounds: dict[str, tuple[float, float]], random_state: int, n: int
) -> list[dict[str, float]]:
    """The first ``n`` random probes bayes_opt 3.4 itself proposes with these bounds and random_state."""
    from bayes_opt import BayesianOptimization

    opt = BayesianOptimization(f=None, pbounds=dict(bounds), random_state=random_state, verbose=0)
    return [{k: float(v) for k, v in p.items()} for p in opt.random_sample(n)]


def _emulated_1x_suggest(
    x: np.ndarray, y: np.ndarray, bounds: np.ndarray, rng: np.random.RandomState, kappa: float
) -> np.ndarray:
    """bayes_opt 1.x's ``suggest``: fit the GP (Matern 2.5, alpha 1e-6, 5 restarts, sklearn < 0.23's
    normalize_y: centred targets), then ``acq_max``: the best of 10,000 uniform tries and of L-BFGS-B runs
    from 10 fresh uniform seeds, clipped to the bounds."""
    from scipy.optimize import minimize
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import Matern

    gp = GaussianProcessRegressor(
        kernel=Matern(nu=2.5), alpha=1e-6, normalize_y=False, n_restarts_optimizer=5, random_state=rng
    )
    gp.fit(x, y - y.mean())

    def ucb(points: np.ndarray) -> np.ndarray:
        mean, std = gp.predict(points, return_std=True)
        return mean + kappa * std

    tries = rng.uniform(bounds[:, 0], bounds[:, 1], size=(10_000, bounds.shape[0]))
    values = ucb(tries)
    x_max, best = tries[values.argmax()], float(values.max())
    for seed in rng.uniform(bounds[:, 0], bounds[:, 1], size=(10, bounds.shape[0])):
        res = minimize(lambda z: -ucb(z.reshape(1, -1))[0], seed, bounds=bounds, method="L-BFGS-B")
        if res.success and -float(np.ravel(res.fun)[0]) >= best:
            x_max, best = res.x, -float(np.ravel(res.fun)[0])
    return np.clip(x_max, bounds[:, 0], bounds[:, 1])


def guided_proposals(
    published: list[BayesIteration],
    bounds: dict[str, tuple[float, float]],
    random_state: int,
    init_points: int,
    setting: str = PRIMARY_SETTING,
) -> list[dict[str, float]]:
    """The points proposed for iterations ``init_points``.. of Fig 4.12, each after registering the printed
    probes and targets before it, under one of GUIDED_SETTINGS. Deterministic: one
    ``RandomState(random_state)`` serves every suggestion in turn, as in one optimisation run."""

    if setting not in GUIDED_SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; known: {', '.join(GUIDED_SETTINGS)}")
    rng = np.random.RandomState(random_state)
    xs = np.array([[float(getattr(p, k)) for k in BAYES_KEYS] for p in published])
    ys = np.array([float(p.target) for p in published])
    box = np.array([bounds[k] for k in BAYES_KEYS])
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(init_points, len(published)):
            if setting == "bayes_opt1_emulated":
                point = _emulated_1x_suggest(xs[:i], ys[:i], box, rng, UCB_KAPPA)
                out.append({k: float(v) for k, v in zip(BAYES_KEYS, point, strict=True)})
                continue
            # bayes_opt3_ucb_centred is the engine's own proposal; bayes_opt3_default the same without centring
            points = [dict(zip(BAYES_KEYS, (float(v) for v in xrow), strict=True)) for xrow in xs[:i]]
            centred = setting == "bayes_opt3_ucb_centred"
            out.append(bayesian.suggest(points, list(ys[:i]), dict(bounds), rng, centred=centred))
    return out


def target_counts(published: list[BayesIteration], n: int) -> list[int | None]:
    """For each printed target, the k for which the float32 k/n is that target digit for digit (the probes'
    targets are fastai validation accuracies, float32 tensors turned into Python floats), or None."""
    out: list[int | None] = []
    for p in published:
        k = round(float(p.target) * n)
        hits = [c for c in (k - 1, k, k + 1) if 0 <= c <= n and repr(float(np.float32(c) / np.float32(n))) == p.target]
        out.append(hits[0] if hits else None)
    return out


def audit_bayesian(spec: Spec, valid_size: int | None = None) -> dict[str, Any]:
    """Bounds, random_state and init_points of Fig 4.12's search, and which of its probes bayes_opt 3.4
    proposes again digit for digit (random probes, and guided ones under each of GUIDED_SETTINGS)."""
    published = list(spec.published.bayesian)
    bounds = infer_bounds(published)
    sitting = on_bounds(published, bounds)
    seeds = search_random_state(published, bounds)
    basis = [
        "bounds: the smallest and largest printed value of each parameter; they are printed by the guided probes "
        + "; ".join(f"{k} {bounds[k][0]!r}..{bounds[k][1]!r} at iterations {sitting[k]}" for k in BAYES_KEYS),
        f"random_state: searched {SEED_RANGE[0]}..{SEED_RANGE[1]} for RandomState(seed).uniform(low, high) draws "
        f"in bayes_opt's key order {list(BAYES_KEYS)} equal to iteration 0 digit for digit: {seeds}",
    ]
    doc: dict[str, Any] = {
        "bounds": {k: list(bounds[k]) for k in BAYES_KEYS},
        "bounds_printed_at": sitting,
        "random_state_candidates": seeds,
        "random_state": seeds[0] if len(seeds) == 1 else None,
        "init_points": None,
        "n_iter": None,
        "iterations": [],
        "settings": {},
        "exact": [],
        "basis": basis,
    }
    if len(seeds) != 1:
        basis.append("the random_state is not unique: no probes are proposed again")
        return doc
    seed = seeds[0]
    random_probes = bayes_opt_random_probes(bounds, seed, len(published))
    init_points = 0
    for p, q in zip(published, random_probes, strict=True):
        if _reprs(q) != _probe_values(p):
            break
        init_points += 1
    doc["init_points"] = init_points
    doc["n_iter"] = len(published) - init_points
    basis.append(
        f"init_points: bayes_opt 3.4 (BayesianOptimization(pbounds, random_state={seed}).random_sample) proposes "
        f"iterations 0..{init_points - 1} digit for digit and its next draw is not iteration {init_points}: "
        f"{init_points} random probes, then {len(published) - init_points} guided ones"
    )
    settings: dict[str, Any] = {}
    for name, text in GUIDED_SETTINGS.items():
        proposals = guided_proposals(published, bounds, seed, init_points, name)
        exact = [
            p.index
            for p, q in zip(published[init_points:], proposals, strict=True)
            if all(repr(q[k]) == getattr(p, k) for k in BAYES_KEYS)
        ]
        settings[name] = {"description": text, "exact": exact, "proposed": [_reprs(q) for q in proposals]}
    doc["settings"] = settings
    primary = settings[PRIMARY_SETTING]
    iterations = []
    for p in published:
        if p.index < init_points:
            proposed, source = random_probes[p.index], "random draw"
            proposed_text = _reprs(proposed)
        else:
            proposed_text = primary["proposed"][p.index - init_points]
            source = PRIMARY_SETTING
        exact = all(proposed_text[k] == getattr(p, k) for k in BAYES_KEYS)
        iterations.append(
            {
                "index": p.index,
                "published": {"target": p.target, **_probe_values(p)},
                "proposed": proposed_text,
                "source": source,
                "exact": exact,
                "max_abs_diff": max(abs(float(proposed_text[k]) - float(getattr(p, k))) for k in BAYES_KEYS),
            }
        )
    doc["iterations"] = iterations
    doc["exact"] = [it["index"] for it in iterations if it["exact"]]
    basis.append(
        "guided probes: bayes_opt 3.4 asked to suggest each of them after registering the printed probes and "
        f"targets before it (optimizer.register), under {len(settings)} settings; exact under each: "
        + "; ".join(f"{name} {s['exact']}" for name, s in settings.items())
    )
    if valid_size:
        counts = target_counts(published, valid_size)
        doc["target_counts"] = counts
        doc["target_valid_size"] = valid_size
        basis.append(
            f"targets: {sum(c is not None for c in counts)} of {len(counts)} printed targets are the float32 "
            f"k/{valid_size} digit for digit (Table 4.14's validation size)"
        )
    return doc


def _reprs(point: dict[str, float]) -> dict[str, str]:
    return {k: repr(float(point[k])) for k in BAYES_KEYS}


# ------------------------------------------------------------------------------------------------ test accuracies


def audit_test_accuracy(printed: str, n: int = TEST_CELLS) -> dict[str, Any]:
    """Which k/n print as a published test accuracy (sections 4.1.1-4.2.1 against the 1,867 test cells of
    section 3.1): rounded to the printed digits (``fits``) and, failing that, cut off (``fits_truncated``)."""
    fits = ratio_fits(printed, n)
    truncated = truncation_fits(printed, n)
    value, digits = printed_value(printed)
    nearest = round(float(value) * n)
    pct_digits = max(0, digits - 2)
    nearest_text = f"{100 * nearest / n:.{pct_digits}f}%"
    window = n * 10.0**-digits  # the expected number of k/n in a window one printed unit wide
    if fits:
        text = f"{printed} is k/{n} for {_k_text(fits)}"
    else:
        text = f"{printed} is no k/{n}: the nearest, {nearest}/{n} = {100 * nearest / n:.6f}%, prints as {nearest_text}"
        if truncated:
            text += (
                f"; cut off rather than rounded, {_k_text(truncated)} gives {printed} (a window of one printed "
                f"unit holds {window:.2f} values k/{n} on average, so this is suggestive, not proof)"
            )
    return {
        "printed": printed,
        "test_cells": n,
        "fits": fits,
        "is_ratio": bool(fits),
        "fits_truncated": truncated,
        "nearest": {"k": nearest, "printed": nearest_text},
        "basis": [f"k/{n} rounded to the printed {pct_digits} decimal(s) of a percentage: {text}"],
    }


def _k_text(ks: list[int]) -> str:
    if len(ks) == 1:
        return f"k = {ks[0]}"
    if ks == list(range(ks[0], ks[-1] + 1)):
        return f"k in {ks[0]}..{ks[-1]}"
    return f"k in {ks}"


# ------------------------------------------------------------------------------------------------ spec checks


def _check(spec: str, fld: str, spec_value: Any, audit_value: Any, agrees: bool | None, **extra: Any) -> dict[str, Any]:
    return {"spec": spec, "field": fld, "spec_value": spec_value, "audit_value": audit_value, "agrees": agrees, **extra}


def _kfold_checks(spec: Spec, tables: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """K-fold (Fig 4.9, Tables 4.9-4.13): the folds have no valid_size; their audited sizes N_i are folds of
    a split of M cells (floor/ceil(M/folds)), so M is their sum when every fold is printed."""
    folds = spec.kfold.folds if spec.kfold else 5
    keys = sorted((k for k in spec.published.tables if k in tables), key=table_key_order)
    sizes = [tables[k]["valid_size"] for k in keys]
    checks: list[dict[str, Any]] = []
    info: dict[str, Any] = {"tables": keys, "fold_sizes": sizes, "folds": folds}
    if not sizes or any(s is None for s in sizes):
        return checks, info
    complete = len(sizes) == folds
    candidates = [
        m
        for m in range(folds * min(sizes) - folds, folds * max(sizes) + folds + 1)
        if all(s in (m // folds, -(-m // folds)) for s in sizes)
    ]
    cells = sum(sizes) if complete else None
    info.update({"cells": cells, "cells_candidates": candidates, "dataset_cells": TRAIN_CELLS})
    ranges = [tables[k]["positives_range"] for k in keys]
    if all(r is not None for r in ranges):
        # every fold holds q or q+1 positives: q in [max lo - 1, min hi], so every fold's P in [max lo - 1, min hi + 1]
        lo, hi = max(r[0] for r in ranges) - 1, min(r[1] for r in ranges) + 1
        info["positives_per_fold"] = [lo, hi] if lo < hi else None
        info["positives_basis"] = (
            "StratifiedKFold (Fig 4.9) gives every fold q or q+1 positives; the folds' F1 ranges of P "
            + ", ".join(f"{k}: {r[0]}..{r[1]}" for k, r in zip(keys, ranges, strict=True))
            + (
                f" leave every fold {lo}..{hi} positives ({lo / max(sizes):.3f}..{hi / min(sizes):.3f} of a fold; "
                + ", ".join(f"{c} {v:.3f}" for c, v in CLASS_SHARES.items())
                + " of the training cells)"
                if lo < hi
                else " are incompatible"
            )
        )
    expected = sorted({TRAIN_CELLS // folds, -(-TRAIN_CELLS // folds)})
    info["dataset_fold_sizes"] = expected
    valid_size = spec.recipe.valid_size if spec.recipe else None
    checks.append(
        _check(
            spec.id,
            "recipe.valid_size",
            valid_size,
            f"folds of {', '.join(map(str, sizes))} cells (Tables {', '.join(keys)})"
            + (f" = 1/{folds} of {cells} cells" if cells else ""),
            all(s in expected for s in sizes),
            note=(
                f"k-fold folds have no valid_size; a {folds}-fold split of the {TRAIN_CELLS} training cells "
                f"(section 3.1) has folds of {'/'.join(map(str, expected))}"
                + (f", the printed folds add up to {cells}" if cells else "")
            ),
        )
    )
    checks.append(
        _check(
            spec.id,
            "kfold.folds",
            folds,
            f"fold sizes {sizes} are floor/ceil(M/{folds}) for M in {candidates}" if candidates else "no M fits",
            bool(candidates) and (cells is None or cells in candidates),
        )
    )
    return checks, info


def spec_checks(
    specs: dict[str, Spec], tables: dict[str, dict[str, Any]], bayes: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The specs' recipe fields against the audit: valid_size, f_beta.beta and f_beta.positive per table,
    and the Bayesian search's bounds, random_state, init_points and n_iter."""
    checks: list[dict[str, Any]] = []
    for spec in specs.values():
        keys = sorted((k for k in spec.published.tables if k in tables), key=table_key_order)
        if spec.recipe is None or not keys:
            continue
        if spec.kind == "kfold":
            checks.extend(_kfold_checks(spec, tables)[0])
        for key in keys:
            t = tables[key]
            if spec.kind != "kfold":
                vs = spec.recipe.valid_size
                checks.append(
                    _check(spec.id, "recipe.valid_size", vs, t["valid_size"], vs == t["valid_size"], table=key)
                )
            if t["beta_note"] == "no f_beta column":
                continue
            fb = spec.recipe.f_beta
            checks.append(
                _check(
                    spec.id,
                    "recipe.f_beta.beta",
                    fb.beta,
                    t["beta"],
                    None if t["beta"] is None else fb.beta == t["beta"],
                    table=key,
                )
            )
            cls = t["positive_class"]
            checks.append(
                _check(
                    spec.id,
                    "recipe.f_beta.positive",
                    fb.positive,
                    cls if cls else _positive_text(t),
                    None if cls is None else fb.positive == cls,
                    table=key,
                )
            )
    if bayes is not None:
        spec = next((s for s in specs.values() if s.bayesian is not None and s.published.bayesian), None)
        if spec is not None and spec.bayesian is not None:
            for k in BAYES_KEYS:
                b = spec.bayesian.bounds.get(k)
                sv = [b.low, b.high] if b else None
                av = bayes["bounds"][k]
                checks.append(_check(spec.id, f"bayesian.bounds.{k}", sv, av, sv == av))
            for fld in ("random_state", "init_points", "n_iter"):
                sv = getattr(spec.bayesian, fld)
                av = bayes.get(fld)
                checks.append(_check(spec.id, f"bayesian.{fld}", sv, av, None if av is None else sv == av))
    return checks


def _positive_text(t: dict[str, Any]) -> str | None:
    shares = "/".join(f"{v:.3f}" for v in CLASS_SHARES.values())
    if t.get("positive_fraction_range"):
        lo, hi = t["positive_fraction_range"]
        return f"P/N in {lo:.3f}..{hi:.3f}: no single class share (normal/ALL {shares}) fits"
    if t.get("positive_fraction") is not None:
        return f"P/N = {t['positive_fraction']:.3f} matches neither class share (normal/ALL {shares})"
    return None


# ------------------------------------------------------------------------------------------------ the document


def audit(specs: dict[str, Spec]) -> dict[str, Any]:
    """The audit of every published table, the Bayesian search and the test accuracies, and the specs'
    fields checked against it, as a JSON-ready document (see the module docstring)."""
    tables: dict[str, dict[str, Any]] = {}
    for spec in specs.values():
        for key, table in spec.published.tables.items():
            if "accuracy" in table.columns:
                tables[key] = audit_table(key, spec.id, table)
    tables = {k: tables[k] for k in sorted(tables, key=table_key_order)}
    _shared_positives(specs, tables)
    bayes = None
    for spec in specs.values():
        if spec.published.bayesian:
            n = next((tables[k]["valid_size"] for k in spec.published.tables if k in tables), None)
            bayes = audit_bayesian(spec, n)
            break
    tests = {
        spec.id: audit_test_accuracy(spec.published.test_accuracy)
        for spec in specs.values()
        if spec.published.test_accuracy
    }
    kfold = {}
    for spec in specs.values():
        if spec.kind == "kfold" and any(k in tables for k in spec.published.tables):
            kfold[spec.id] = _kfold_checks(spec, tables)[1]
    return {
        "tables": tables,
        "kfold": kfold,
        "bayesian": bayes,
        "test_accuracy": tests,
        "spec_checks": spec_checks(specs, tables, bayes),
    }


def _shared_positives(specs: dict[str, Spec], tables: dict[str, dict[str, Any]]) -> None:
    """Tables whose P is not identifiable (F1: Tables 4.4, 4.9-4.14) but whose N equals that of a table with
    a known P (Table 4.4 and Table 4.1 both have N=2793): if that P lies in the table's range, the matrices
    are given as ``epochs_if_shared``, under the assumption that both used the same validation split."""
    known = [(k, t) for k, t in tables.items() if t["positives"] is not None]
    for key, t in tables.items():
        if t["positives"] is not None or t["positives_range"] is None or t["beta"] is None:
            continue
        for other, o in known:
            if (
                o["valid_size"] != t["valid_size"]
                or not t["positives_range"][0] <= o["positives"] <= t["positives_range"][1]
            ):
                continue
            table = specs[t["spec"]].published.tables[key]
            fbetas = [r["f_beta"] for r in _cells(table)]
            epochs = matrices_at(t["valid_size"], t["correct"], fbetas, t["beta"], o["positives"])
            if epochs is None:
                continue
            t["epochs_if_shared"] = {"table": other, "positives": o["positives"], "epochs": epochs}
            t["basis"].append(
                f"Table {other} has the same N={t['valid_size']} and P={o['positives']}, inside this table's range "
                f"{t['positives_range'][0]}..{t['positives_range'][1]}: if both used one validation split, "
                "epochs_if_shared gives this table's confusion matrices"
            )
            break


def format_audit(doc: dict[str, Any]) -> str:
    """A terminal rendering of :func:`audit`'s document: a few lines per table, the Bayesian iterations with
    exact yes/no, the test accuracies and the spec fields that disagree with the audit."""
    lines = ["Audit of the printed figures (chapter 4)", ""]
    for key, t in doc["tables"].items():
        n = t["valid_size"]
        lines.append(f"Table {key} ({t['spec']}): N = {n if n is not None else 'none fits'}")
        lines.append(f"  {t['valid_size_note']}")
        if t["beta_note"] != "no f_beta column":
            pos = t["positives"]
            if pos is not None:
                ptext = f"P = {pos} ({t['positive_fraction']:.3f} of N, {t['positive_class'] or 'no class'})"
            elif t["positives_range"]:
                lo, hi = t["positives_range"]
                ptext = f"P in {lo}..{hi} (not identifiable)"
            else:
                ptext = "P unknown"
            lines.append(f"  beta = {t['beta'] if t['beta'] is not None else '?'} ({t['beta_note']}); {ptext}")
            cms = [e for e in t["epochs"] if e is not None]
            if cms:
                lines.append(
                    "  TP/FP/FN/TN: " + "  ".join(f"{e['tp']}/{e['fp']}/{e['fn']}/{e['tn']}" for e in t["epochs"] if e)
                )
            elif any(tp is not None for tp in t["true_positives"]):
                lines.append("  TP: " + " ".join(str(tp) for tp in t["true_positives"]))
            shared = t.get("epochs_if_shared")
            if shared:
                lines.append(
                    f"  if the split is Table {shared['table']}'s (P = {shared['positives']}): TP/FP/FN/TN "
                    + "  ".join(f"{e['tp']}/{e['fp']}/{e['fn']}/{e['tn']}" for e in shared["epochs"])
                )
        else:
            lines.append("  no f_beta column")
    for sid, info in doc.get("kfold", {}).items():
        if info.get("cells"):
            lines.append(
                f"k-fold ({sid}): folds {info['fold_sizes']} add up to {info['cells']} cells "
                f"(a split of the {info['dataset_cells']} training cells gives {info['dataset_fold_sizes']})"
            )
        if info.get("positives_basis"):
            lines.append(f"  {info['positives_basis']}")
    bayes = doc.get("bayesian")
    if bayes:
        lines += ["", "Bayesian search (Fig 4.12)"]
        lines.append(
            "  bounds "
            + ", ".join(f"{k} {v[0]!r}..{v[1]!r}" for k, v in bayes["bounds"].items())
            + f"; random_state {bayes['random_state']}; init_points {bayes['init_points']}; n_iter {bayes['n_iter']}"
        )
        for it in bayes["iterations"]:
            mark = "yes" if it["exact"] else f"no (off by {it['max_abs_diff']:.3g})"
            proposed = ", ".join(f"{k}={v}" for k, v in it["proposed"].items())
            lines.append(f"  {it['index']:>2} exact {mark:<22} {it['source']}: {proposed}")
        for name, s in bayes["settings"].items():
            lines.append(f"  setting {name}: exact {s['exact']}")
    lines += ["", "Test accuracies (1,867 test cells)"]
    for sid, t in doc["test_accuracy"].items():
        lines.append(f"  {sid}: {t['basis'][0]}")
    checks = doc["spec_checks"]
    disagreements = [c for c in checks if c["agrees"] is False]
    undecided = [c for c in checks if c["agrees"] is None]
    lines += [
        "",
        f"Spec fields checked: {len(checks)}; agreeing {sum(c['agrees'] is True for c in checks)}, "
        f"disagreeing {len(disagreements)}, not decidable from the figures {len(undecided)}",
    ]
    for title, group in (("disagree", disagreements), ("cannot be decided", undecided)):
        if group:
            lines.append(f"  {title}:")
        for c in group:
            where = f" (Table {c['table']})" if c.get("table") else ""
            lines.append(f"    {c['spec']} {c['field']}{where}: spec {c['spec_value']!r}, audit {c['audit_value']!r}")
    return "\n".join(lines)
