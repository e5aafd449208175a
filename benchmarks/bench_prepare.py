"""Preparing real cells: decoding and preparing from the image files against reading the prepared cache.

Run with ``tox -e bench`` (or ``pytest benchmarks -o python_files='bench_*.py' --benchmark-only``).
Both benchmarks handle the same cells; compare their ``cells/s`` in the printed table (extra_info).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnmc_repro.data.dataset import load_dataset
from cnmc_repro.data.prepare import Preparation, PreparedCache

SAMPLE = Path(os.environ.get("CNMC_SAMPLE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
N_CELLS = int(os.environ.get("BENCH_PREPARE_CELLS", "400"))
PREP = Preparation(size=224)


@pytest.fixture(scope="module")
def real_cells():
    root = SAMPLE / "cnmc_fold0"
    if not root.is_dir():
        pytest.skip(f"the real C-NMC sample {root} is absent")
    return load_dataset(root, progress=False).split("train")[:N_CELLS]


def test_prepare_from_image_files(benchmark, real_cells, tmp_path_factory):
    """Decode, crop, equalise and resize every cell, writing the cache (a cold cache each round)."""

    def setup():
        return (PreparedCache(tmp_path_factory.mktemp("cold")),), {}

    def run(cache):
        return cache.load(real_cells, PREP, progress=False)

    result = benchmark.pedantic(run, setup=setup, rounds=3, iterations=1)
    assert result.decoded == len({c.sha256 for c in real_cells})
    benchmark.extra_info["cells"] = len(real_cells)
    benchmark.extra_info["cells_per_s"] = len(real_cells) / benchmark.stats.stats.mean


def test_prepare_from_cache(benchmark, real_cells, tmp_path_factory):
    """The same cells read back from the prepared cache."""
    cache = PreparedCache(tmp_path_factory.mktemp("warm"))
    cache.load(real_cells, PREP, progress=False)
    result = benchmark.pedantic(lambda: cache.load(real_cells, PREP, progress=False), rounds=5, iterations=1)
    assert result.decoded == 0
    benchmark.extra_info["cells"] = len(real_cells)
    benchmark.extra_info["cells_per_s"] = len(real_cells) / benchmark.stats.stats.mean
