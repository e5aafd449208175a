"""Which data a command works on: a real C-NMC folder given with ``--data``, or the built-in synthetic set."""

from __future__ import annotations

from pathlib import Path

from filelock import FileLock

from cnmc_repro.data.dataset import Dataset, load_dataset
from cnmc_repro.data.synthetic import builtin_data, is_synthetic
from cnmc_repro.paths import cache_root


def open_dataset(path: str | Path | None, progress: bool = True) -> Dataset:
    """``path`` (the folder holding ``training_data/``), or the built-in data when ``path`` is None."""
    if path is None:
        # one process writes it; the others that share the cache folder wait and then find it written
        with FileLock(cache_root() / "synthetic.lock", thread_local=False):
            root = builtin_data(progress=progress)
        return load_dataset(root, synthetic=True, progress=progress)
    return load_dataset(Path(path), synthetic=is_synthetic(Path(path)), progress=progress)
