import numpy as np
from conftest import TINY

from cnmc_repro.data.dataset import load_dataset
from cnmc_repro.data.synthetic import SMALL, is_synthetic, synthesize


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = synthesize(tmp_path / "a", seed=3, layout=TINY, progress=False)
    b = synthesize(tmp_path / "b", seed=3, layout=TINY, progress=False)
    c = synthesize(tmp_path / "c", seed=4, layout=TINY, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert any((a / f).read_bytes() != (c / f).read_bytes() for f in files if f.suffix == ".bmp")
    assert is_synthetic(a)


def test_cells_look_like_cnmc_cells(tiny_data_ro):
    import cv2

    ds = load_dataset(tiny_data_ro)
    img = cv2.imread(str(ds.split("train")[0].path))
    assert img.shape == (450, 450, 3)
    black = (img == 0).all(axis=2).mean()
    assert 0.6 < black < 0.97  # a cell on a mostly exactly-black background
    assert cv2.imread(str(ds.split("final_test")[0].path)).shape == (600, 600, 3)


def test_small_layout_keeps_the_reports_proportions():
    n_all = sum(f[2] for f in SMALL.folds)
    n_normal = sum(f[3] for f in SMALL.folds)
    assert abs(n_all / n_normal - 7272 / 3389) < 0.1
    subjects_all = sum(f[0] for f in SMALL.folds)
    subjects_normal = sum(f[1] for f in SMALL.folds)
    assert abs(subjects_all / subjects_normal - 47 / 26) < 0.3


def test_subjects_differ_in_colour(tiny_data_ro):
    import cv2

    ds = load_dataset(tiny_data_ro)
    means = {}
    for c in ds.split("train"):
        img = cv2.imread(str(c.path)).reshape(-1, 3)
        fg = img[(img > 0).any(axis=1)]
        means.setdefault(c.subject, []).append(fg.mean(axis=0))
    per_subject = np.array([np.mean(v, axis=0) for v in means.values()])
    within = np.mean([np.std(v, axis=0).mean() for v in means.values() if len(v) > 1])
    assert per_subject.std(axis=0).mean() > 0.5 * within
