import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from cnmc_repro.data.dataset import Cell, load_dataset
from cnmc_repro.data.splits import random_split, stratified_kfold, subject_groups, subject_kfold
from cnmc_repro.errors import UserError


def test_random_split_is_fastai_v1_split_by_rand_pct():
    tr, va = random_split(100, 0.2, seed=42)
    perm = np.random.RandomState(42).permutation(100)
    assert sorted(va) == sorted(perm[:20]) and len(tr) == 80
    assert len(random_split(100, 13, seed=1)[1]) == 13
    with pytest.raises(UserError):
        random_split(10, 10, seed=1)


def test_stratified_kfold_is_fig_4_9():
    labels = np.array([0] * 70 + [1] * 30)
    ours = stratified_kfold(labels, 5, seed=1)
    ref = list(StratifiedKFold(n_splits=5, shuffle=True, random_state=1).split(np.zeros(100), labels))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(ours, ref, strict=True))
    assert all(abs(labels[va].mean() - 0.3) < 0.06 for _, va in ours)


def _cell(subject, sha, label="ALL"):
    from pathlib import Path

    return Cell(Path(f"{subject}-{sha}.bmp"), "train", 0, label, subject, sha)


def test_byte_identical_cells_join_their_subjects_in_one_group():
    cells = [_cell("1", "a"), _cell("1", "b"), _cell("2", "b"), _cell("3", "c"), _cell("4", "d")]
    g = subject_groups(cells)
    assert g[0] == g[1] == g[2] and len({g[2], g[3], g[4]}) == 3


def test_subject_kfold_keeps_subjects_and_duplicates_apart(tiny_data_ro):
    cells = load_dataset(tiny_data_ro).split("train")
    folds = subject_kfold(cells, k=2, seed=1)
    hashes = [c.sha256 for c in cells]
    for tr, va in folds:
        assert not {cells[i].subject for i in tr} & {cells[i].subject for i in va}
        assert not {hashes[i] for i in tr} & {hashes[i] for i in va}
    assert sorted(np.concatenate([va for _, va in folds]).tolist()) == list(range(len(cells)))
    with pytest.raises(UserError, match="cannot make 10 folds"):
        subject_kfold(cells, k=10)
