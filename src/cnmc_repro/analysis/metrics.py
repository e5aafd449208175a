"""Metrics of the report (section 2.3.5) and of the challenge, as pure functions of plain numbers.

Classes are indexed as fastai v1 numbered the sorted folder names: 0 = ALL ('all'), 1 = normal ('hem').
The clinical metrics take ALL as the positive class, as section 2.3.5 does ("cancer is the class that we
wish to predict so it is positive"); the per-epoch ``f_beta`` takes the positive class its spec names,
because fastai v1's ``FBeta`` scored class index 1 ('hem') by default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

ALL_INDEX, NORMAL_INDEX = 0, 1
CLASS_INDEX = {"ALL": ALL_INDEX, "normal": NORMAL_INDEX}


def confusion(targets: Sequence[int], predictions: Sequence[int]) -> list[list[int]]:
    """2x2 counts, rows = true class, columns = predicted class, in class-index order (ALL, normal)."""
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(predictions, dtype=np.int64)
    counts = np.bincount(t * 2 + p, minlength=4).reshape(2, 2)
    return counts.tolist()


def f_beta_from_confusion(cm: Sequence[Sequence[int]], beta: float, positive: int) -> float:
    """F-beta with ``positive`` as the positive class index; 0 when there is no true or predicted positive."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = cm[positive, positive]
    fn = cm[positive].sum() - tp
    fp = cm[:, positive].sum() - tp
    b2 = beta * beta
    denom = (1 + b2) * tp + b2 * fn + fp
    return float((1 + b2) * tp / denom) if denom > 0 else 0.0


def accuracy_from_confusion(cm: Sequence[Sequence[int]]) -> float:
    cm = np.asarray(cm, dtype=np.float64)
    return float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b else None


@dataclass(frozen=True)
class Summary:
    """Every figure the suite reports for one set of cells (a validation or test set)."""

    cells: int
    confusion: list[list[int]]  # rows true (ALL, normal), columns predicted (ALL, normal)
    accuracy: float
    error_rate: float
    sensitivity: float | None  # ALL recall
    specificity: float | None
    precision: float | None  # of ALL
    f1: float  # ALL positive
    f_beta: float  # the spec's beta and positive class
    weighted_f1: float
    balanced_accuracy: float | None
    roc_auc: float | None


SUMMARY_FIGURES = tuple(f.name for f in fields(Summary))  # the names of the summary figures, defined once


def summary(targets: Sequence[int], prob_all: Sequence[float], beta: float = 1.0, positive: str = "ALL") -> Summary:
    """Every figure of :class:`Summary` for one set of cells, from true classes and P(ALL) per cell.

    A cell is predicted ALL when P(ALL) >= 0.5 (the argmax of two softmax outputs).
    """
    t = np.asarray(targets, dtype=np.int64)
    p_all = np.asarray(prob_all, dtype=np.float64)
    pred = np.where(p_all >= 0.5, ALL_INDEX, NORMAL_INDEX)
    cm = confusion(t, pred)
    tp, fn = cm[ALL_INDEX][ALL_INDEX], cm[ALL_INDEX][NORMAL_INDEX]
    fp, tn = cm[NORMAL_INDEX][ALL_INDEX], cm[NORMAL_INDEX][NORMAL_INDEX]
    sensitivity = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    rates = [v for v in (sensitivity, specificity) if v is not None]
    return Summary(
        cells=int(len(t)),
        confusion=cm,
        accuracy=accuracy_from_confusion(cm),
        error_rate=1 - accuracy_from_confusion(cm),
        sensitivity=sensitivity,
        specificity=specificity,
        precision=_ratio(tp, tp + fp),
        f1=f_beta_from_confusion(cm, 1.0, ALL_INDEX),
        f_beta=f_beta_from_confusion(cm, beta, CLASS_INDEX[positive]),
        weighted_f1=float(f1_score(t, pred, average="weighted", labels=[0, 1], zero_division=0)),
        balanced_accuracy=float(np.mean(rates)) if rates else None,
        roc_auc=float(roc_auc_score(t == ALL_INDEX, p_all)) if len(np.unique(t)) == 2 else None,
    )


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def class_weights(targets: Sequence[int], n_classes: int = 2) -> list[float]:
    """Section 4.2.3: each class weighted by the inverse of the proportion of the cells it makes up, N / n_c."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=n_classes).astype(np.float64)
    return (counts.sum() / np.maximum(counts, 1)).tolist()
