"""Data feeding: the report's way against the suite's cached, device-resident batches, same cells, same run.

The report fed fastai with image files decoded, resized and augmented every epoch (``ImageDataLoaders``
with ``aug_transforms``). The suite prepares each cell once into a uint8 cache, copies the cells to the
training device and augments whole batches there. One epoch over the same cells is timed both ways;
``extra_info`` holds cells/s of each and their ratio.

Sizes: ``BENCH_CELLS`` cells (default 512 on a CPU, 4096 on a GPU; 0 for every training cell) at ``BENCH_SIZE`` px
(default 64 on a CPU, 224 on a GPU); real C-NMC cells from ``CNMC_SAMPLE_DATA`` when present, else the
built-in synthetic cells (``BENCH_DATA`` names another folder).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from cnmc_repro.data.dataset import TRAIN, load_dataset
from cnmc_repro.data.prepare import Preparation, PreparedCache, prepare_file
from cnmc_repro.data.source import open_dataset
from cnmc_repro.run.batches import DeviceBatches
from cnmc_repro.spec.schema import Augmentation

GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if GPU else "cpu")
SIZE = int(os.environ.get("BENCH_SIZE", "224" if GPU else "64"))
N_CELLS = int(os.environ.get("BENCH_CELLS", "4096" if GPU else "512"))  # 0: every training cell
BS = int(os.environ.get("BENCH_BS", "64"))
SAMPLE = Path(os.environ.get("CNMC_SAMPLE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="module")
def cells():
    root = os.environ.get("BENCH_DATA") or (SAMPLE / "cnmc_fold0" if (SAMPLE / "cnmc_fold0").is_dir() else None)
    ds = load_dataset(root, progress=False) if root else open_dataset(None, progress=False)
    train = [c for c in ds.cells if c.split == TRAIN]
    return train[:N_CELLS] if N_CELLS else train


@pytest.fixture(scope="module")
def prepared_files(cells, tmp_path_factory):
    """The cells cropped and equalised once and written as PNG, as the report's notebooks fed fastai."""
    import cv2

    folder = tmp_path_factory.mktemp("prepared_png")

    def write(i: int) -> Path:
        img = prepare_file(cells[i].path, Preparation(size=SIZE * 2))  # fastai's Resize(SIZE) still runs each epoch
        p = folder / f"{i}_{cells[i].label}.png"
        cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        return p

    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return list(pool.map(write, range(len(cells))))


def report_pipeline_epoch(paths: list[Path], labels: list[str]) -> int:
    """One epoch through fastai's ImageDataLoaders with aug_transforms (decode, resize, augment per epoch)."""
    from fastai.vision.all import ImageDataLoaders, Resize, aug_transforms

    dls = ImageDataLoaders.from_lists(
        paths[0].parent,
        paths,
        labels,
        valid_pct=0.0,
        bs=BS,
        item_tfms=Resize(SIZE),
        batch_tfms=aug_transforms(do_flip=True, flip_vert=True, max_rotate=10.0),
        device=DEVICE,
        num_workers=min(8, os.cpu_count() or 1) if GPU else 0,
    )
    n = 0
    for x, _ in dls.train:
        n += len(x)
    if GPU:
        torch.cuda.synchronize()
    return n


def suite_epoch(dl: DeviceBatches) -> int:
    n = 0
    for x, _ in dl:
        n += len(x)
    if GPU:
        torch.cuda.synchronize()
    return n


def test_data_feeding_report_pipeline_vs_cached_device_batches(benchmark, cells, prepared_files, tmp_path_factory):
    labels = [c.label for c in cells]
    report_pipeline_epoch(prepared_files[:BS], labels[:BS])  # warm up imports and workers
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        n_report = report_pipeline_epoch(prepared_files, labels)
        times.append(time.perf_counter() - t0)
    report_cells_per_s = n_report / min(times)

    cache = PreparedCache(tmp_path_factory.mktemp("cache"))
    prep = Preparation(size=SIZE)
    cache.load(cells, prep, progress=False)
    t0 = time.perf_counter()
    images = cache.load(cells, prep, progress=False).images  # reading the cache, once per run
    cache_read_s = time.perf_counter() - t0
    dl = DeviceBatches(images, np.array([c.target for c in cells]), BS, True, Augmentation(), 0, DEVICE)
    n_suite = benchmark.pedantic(suite_epoch, args=(dl,), rounds=5, iterations=1, warmup_rounds=1)
    suite_cells_per_s = n_suite / benchmark.stats.stats.min

    benchmark.extra_info.update(
        cells=len(cells),
        size=SIZE,
        batch_size=BS,
        device=str(DEVICE),
        report_pipeline_cells_per_s=round(report_cells_per_s, 1),
        suite_cells_per_s=round(suite_cells_per_s, 1),
        ratio=round(suite_cells_per_s / report_cells_per_s, 1),
        suite_cache_read_s=round(cache_read_s, 3),
    )
    print(
        f"\ndata feeding, {len(cells)} cells at {SIZE}px on {DEVICE}: report pipeline "
        f"{report_cells_per_s:.0f} cells/s, suite {suite_cells_per_s:.0f} cells/s, "
        f"ratio {suite_cells_per_s / report_cells_per_s:.1f}x"
    )
    assert n_suite > 0 and n_report > 0
