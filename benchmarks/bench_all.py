"""The whole study on the built-in data: ``reproduce all`` (smoke profile on a CPU), then the same command again.

The first invocation trains every spec; the second finds every run up to date and does nothing. Both are
timed as a user runs them (a fresh process: imports, data, keys), into a fresh results folder and cache.
``BENCH_ALL_ARGS`` adds options (the GPU script passes ``--profile timing --data ...``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from cnmc_repro.store.environment import processor
from cnmc_repro.store.folders import Store, load_epochs


def _reproduce_all(results, cache) -> tuple[float, str]:
    env = {**os.environ, "CNMC_REPRO_CACHE": str(cache)}
    extra = os.environ.get("BENCH_ALL_ARGS", "").split()
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "reproduce", "all", "--results", str(results), "--no-pretrained", *extra],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t0, out.stdout + out.stderr


def trained_images(results) -> int:
    """Images the runs in ``results`` trained on: training cells times epochs, over every fold, probe and size."""
    store = Store(results)
    total = 0
    for run_dir in store.runs():
        record = store.record(run_dir)
        cells = {f.fold: f.train_cells for f in record.folds}
        for e in load_epochs(run_dir):
            total += cells[e["fold"]] if "fold" in e else record.train_cells
    return total


def test_reproduce_all_then_again(benchmark, tmp_path):
    results, cache = tmp_path / "results", tmp_path / "cache"
    first, log = benchmark.pedantic(_reproduce_all, args=(results, cache), rounds=1, iterations=1)
    second, log2 = _reproduce_all(results, cache)
    trained = log.count("done in ")
    images = trained_images(results)
    benchmark.extra_info.update(
        first_s=round(first, 1),
        second_s=round(second, 1),
        runs_trained=trained,
        trained_images=images,
        ms_per_trained_image=round(1000 * first / images, 2),  # compares machines: the work is fixed
        processor=processor(),
        args=os.environ.get("BENCH_ALL_ARGS", ""),
    )
    print(
        f"\nreproduce all: {first:.0f}s for {trained} runs, {images} trained images ({1000 * first / images:.2f} ms "
        f"each, {processor()}); again: {second:.1f}s ({log2.strip().splitlines()[-1]})"
    )
    assert trained >= 12 and "nothing to do" in log2
