"""Train/validation splits of the training cells.

- ``random_split``: fastai v1's ``split_by_rand_pct`` (a random permutation, the first cells validate),
  the report's default for the single-model tables, with the validation size a spec field.
- ``stratified_kfold``: Fig 4.9, ``StratifiedKFold(n_splits=5, shuffle=True, random_state=1)`` over cells.
- ``subject_kfold``: folds that keep subjects apart; subjects that share a byte-identical file are one
  group, so that the official data's duplicates cannot leak a cell into its own validation fold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from cnmc_repro.data.dataset import Cell
from cnmc_repro.errors import UserError

Split = tuple[np.ndarray, np.ndarray]  # (train indices, validation indices)


def random_split(n: int, valid_size: int | float, seed: int) -> Split:
    """fastai v1 ``split_by_rand_pct``: permute, the first ``valid_size`` cells (a count or a fraction) validate."""
    count = int(valid_size * n) if isinstance(valid_size, float) else int(valid_size)
    if not 0 < count < n:
        raise UserError(f"validation size {valid_size} leaves no cell to train or to validate on (of {n})")
    perm = np.random.RandomState(seed).permutation(n)
    return np.sort(perm[count:]), np.sort(perm[:count])


def stratified_kfold(labels: Sequence[int], k: int = 5, seed: int = 1) -> list[Split]:
    """Fig 4.9: ``StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(cells, labels)``."""
    labels = np.asarray(labels)
    _check_k(k, np.bincount(labels).min())
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in skf.split(np.zeros(len(labels)), labels)]


def subject_groups(cells: Sequence[Cell]) -> np.ndarray:
    """A group id per cell: its subject, merged with every subject it shares a byte-identical file with."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_subject_of_hash: dict[str, str] = {}
    for c in cells:
        subject = c.subject or f"?{c.sha256}"
        other = first_subject_of_hash.setdefault(c.sha256, subject)
        parent[find(subject)] = find(other)
    roots = [find(c.subject or f"?{c.sha256}") for c in cells]
    ids = {r: i for i, r in enumerate(sorted(set(roots)))}
    return np.array([ids[r] for r in roots])


def subject_kfold(cells: Sequence[Cell], k: int = 5, seed: int = 1) -> list[Split]:
    """Stratified k-fold over groups of subjects (duplicates merge groups): no subject in two folds."""
    groups = subject_groups(cells)
    labels = np.array([c.target for c in cells])
    per_class = [len(set(groups[labels == y])) for y in np.unique(labels)]
    _check_k(k, min(per_class), what="subject groups")
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in sgkf.split(np.zeros(len(cells)), labels, groups)]


def subject_split(cells: Sequence[Cell], valid_fraction: float, seed: int) -> Split:
    """One subject-grouped split: the first of about ``1 / valid_fraction`` subject folds validates (fewer
    folds when the smaller class has fewer subject groups than that, never fewer than two)."""
    groups = subject_groups(cells)
    labels = np.array([c.target for c in cells])
    smallest = min(len(set(groups[labels == y])) for y in np.unique(labels))
    k = max(2, min(round(1 / valid_fraction), smallest))
    return subject_kfold(cells, k, seed)[0]


def _check_k(k: int, smallest: int, what: str = "cells") -> None:
    if k < 2:
        raise UserError(f"k-fold needs at least 2 folds, not {k}")
    if smallest < k:
        raise UserError(f"cannot make {k} folds: the smallest class has only {smallest} {what}")
