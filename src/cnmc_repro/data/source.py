"""Which data a command works on: a real C-NMC folder given with ``--data``, or the built-in synthetic set."""

from __future__ import annotations

from pathlib import Path

from cnmc_repro.data.dataset import Dataset, load_dataset
from cnmc_repro.data.synthetic import builtin_data, is_synthetic


def open_dataset(path: str | Path | None, progress: bool = True) -> Dataset:
    """``path`` (the folder holding ``training_data/``), or the built-in data when ``path`` is None."""
    if path is None:
        return load_dataset(builtin_data(progress=progress), synthetic=True, progress=progress)
    return load_dataset(Path(path), synthetic=is_synthetic(Path(path)), progress=progress)
