"""The arithmetic of a printed figure: which exact values and which k/n print as a given string.

fastai v1 printed its metrics as float32 tensors to six digits, the report's test accuracies are percentages
with two, one or no decimals; a printed figure therefore stands for an interval of values. These functions say
whether a ratio k/n or an F-beta of whole counts lands in that interval, exactly (the rational) or as fastai's
float32 arithmetic gave it, and whether a value cut off rather than rounded gives the printed digits.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np

FASTAI_EPS = 1e-9  # fastai v1 CMScores.eps, added to the F-beta's denominator


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
