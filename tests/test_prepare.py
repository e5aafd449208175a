import hashlib
import subprocess
import sys

import numpy as np
import pytest

from cnmc_repro.data.dataset import load_dataset
from cnmc_repro.data.prepare import (
    Preparation,
    PreparedCache,
    crop_informative,
    equalise,
    prepare_image,
)
from cnmc_repro.errors import BadImage
from cnmc_repro.spec.schema import Prepare


def _cell_image() -> np.ndarray:
    img = np.zeros((40, 50, 3), np.uint8)
    img[10:20, 5:30] = np.arange(25, dtype=np.uint8)[None, :, None] * 4 + 20
    return img


def test_crop_keeps_rows_and_columns_with_a_pixel_above_zero():
    img = _cell_image()
    img[25, 40, 1] = 1  # one dim pixel in one channel still counts (threshold 0)
    crop = crop_informative(img, 0)
    assert crop.shape == (16, 36, 3)
    assert crop_informative(img, 200).size == 0


def test_luma_equalisation_stretches_contrast_keeps_black_and_hue():
    img = _cell_image()
    img[10:20, 5:30, 0] //= 2  # a colour, not grey
    out = equalise(img, "luma")
    fg = out[10:20, 5:30]
    assert (out[:10] == 0).all()  # the background stays black
    assert int(fg.max()) - int(fg.min()) > int(img[10:20, 5:30].max()) - int(img[10:20, 5:30].min())
    assert (fg[..., 0].astype(int) <= fg[..., 1].astype(int) + 2).all()  # red stays below green: hue kept
    assert equalise(img, "none") is img
    assert not np.array_equal(equalise(img, "rgb"), out)


def test_prepare_pads_to_a_square_and_resizes():
    out = prepare_image(_cell_image(), Preparation(size=32))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert (out[0] == 0).all() and (out[-1] == 0).all()  # padding above and below a wide crop
    squashed = prepare_image(_cell_image(), Preparation(32, Prepare(resize="squash")))
    assert (squashed[0] > 0).any()


def test_an_empty_cell_is_a_bad_image():
    with pytest.raises(BadImage, match="no pixel is above the crop threshold"):
        prepare_image(np.zeros((10, 10, 3), np.uint8), Preparation(size=8), "x.bmp")


def test_second_load_reads_the_cache(tiny_data, tmp_path):
    cells = load_dataset(tiny_data).split("train")
    cache = PreparedCache(tmp_path / "prep")
    first = cache.load(cells, Preparation(size=24), progress=False)
    second = cache.load(cells, Preparation(size=24), progress=False)
    unique = len({c.sha256 for c in cells})  # byte-identical files are prepared once
    assert unique < len(cells) and first.decoded == unique and second.decoded == 0
    assert np.array_equal(first.images, second.images)


def test_a_changed_file_or_parameter_invalidates_only_what_it_touches(tiny_data, tmp_path):
    import cv2

    cache = PreparedCache(tmp_path / "prep")
    cells = load_dataset(tiny_data).split("train")
    cache.load(cells, Preparation(size=24), progress=False)
    changed = cells[0].path
    img = cv2.imread(str(changed))
    cv2.imwrite(str(changed), 255 - img)
    cells = load_dataset(tiny_data).split("train")
    again = cache.load(cells, Preparation(size=24), progress=False)
    assert again.decoded == 1
    other = cache.load(cells, Preparation(24, Prepare(equalise="none")), progress=False)
    assert other.decoded == len({c.sha256 for c in cells})


def test_an_interrupted_write_leaves_no_entry(tiny_data, tmp_path, monkeypatch):
    import cnmc_repro.atomic as atomic

    cache = PreparedCache(tmp_path / "prep", workers=1)
    cells = load_dataset(tiny_data).split("train")[:3]

    def fail_midway(fd, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "fsync", fail_midway)
    with pytest.raises(KeyboardInterrupt):
        cache.load(cells, Preparation(size=24), progress=False)
    monkeypatch.undo()
    # nothing half-written remains (the preparation's lock file stays, as every lock file does)
    assert not [p for p in (tmp_path / "prep").rglob("*") if p.is_file() and p.suffix != ".lock"]
    assert cache.load(cells, Preparation(size=24), progress=False).decoded == 3


def test_a_truncated_image_stops_or_is_skipped(tiny_data, tmp_path, cli):
    cells = load_dataset(tiny_data).split("train")
    bad = cells[2].path
    bad.write_bytes(bad.read_bytes()[:5000])
    cells = load_dataset(tiny_data).split("train")
    cache = PreparedCache(tmp_path / "prep")
    with pytest.raises(BadImage, match=str(bad.name)):
        cache.load(cells, Preparation(size=24), progress=False)
    kept = cache.load(cells, Preparation(size=24), skip_bad=True, progress=False)
    assert len(kept.cells) == len(cells) - 1 and kept.skipped[0][0].path == bad
    assert kept.images.shape[0] == len(cells) - 1

    code, out, _ = cli("data", "check", "--data", tiny_data, "--prepare", "24")
    assert code == 1 and "not prepared at 24px: --skip-bad prepares the other cells" in out
    code, out, _ = cli("data", "check", "--data", tiny_data, "--prepare", "24", "--skip-bad")
    assert code == 1 and "left out 1 unreadable cell(s)" in out  # the data still holds an unreadable image


PREPARE = """
import hashlib, sys
from cnmc_repro.data.dataset import load_dataset
from cnmc_repro.data.prepare import Preparation, PreparedCache
cells = load_dataset(sys.argv[1], progress=False).split("train")
prepared = PreparedCache(root=sys.argv[2]).load(cells, Preparation(32), progress=False)
print(prepared.decoded, hashlib.sha256(prepared.images.tobytes()).hexdigest())
"""


def test_two_processes_preparing_the_same_cells_at_once_prepare_each_once(tiny_data_ro, tmp_path):
    """Two processes sharing a cache folder (two invocations, two Ray tasks of one machine) ask for the same
    cells at the same moment: one prepares them, the other reads what it wrote, and both get the arrays of a
    preparation alone."""
    cache = tmp_path / "shared"
    args = [sys.executable, "-c", PREPARE, str(tiny_data_ro), str(cache)]
    processes = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].split() for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    cells = load_dataset(tiny_data_ro, progress=False).split("train")
    alone = PreparedCache(root=tmp_path / "alone").load(cells, Preparation(32), progress=False)
    assert sorted(int(decoded) for decoded, _ in outputs) == [0, alone.decoded]
    assert {digest for _, digest in outputs} == {hashlib.sha256(alone.images.tobytes()).hexdigest()}
