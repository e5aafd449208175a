"""``augmentation.npz`` in the results folder: one training cell of the data and draws of it under each
augmentation set a spec can ask for (``Augmentation.transforms``), as uint8 images. The runs write it
(``run.context.augmentation_draws``); the report draws it in its data section without torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnmc_repro.atomic import write_atomic

DRAWS_FILE = "augmentation.npz"


def write_draws(results_dir: Path, draws: dict[str, np.ndarray]) -> Path:
    """``draws``: ``cell`` (H x W x 3) and, per augmentation set, its draws (N x H x W x 3), all uint8."""
    path = Path(results_dir) / DRAWS_FILE
    write_atomic(path, lambda f: np.savez_compressed(f, **draws))
    return path


def read_draws(results_dir: Path) -> dict[str, np.ndarray] | None:
    """The stored draws, or None where no run has written them (or the file cannot be read)."""
    try:
        with np.load(Path(results_dir) / DRAWS_FILE) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError):
        return None
