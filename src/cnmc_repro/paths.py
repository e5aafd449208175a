"""Where the suite keeps what it generates: the built-in data, the prepared-image cache, hashes."""

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder: ``$CNMC_REPRO_CACHE`` if set, else ``~/.cache/cnmc-repro``."""
    env = os.environ.get("CNMC_REPRO_CACHE")
    root = Path(env) if env else Path.home() / ".cache" / "cnmc-repro"
    root.mkdir(parents=True, exist_ok=True)
    return root


def project_root() -> Path:
    """The checkout this package was installed from (``pip install -e .``)."""
    return Path(__file__).resolve().parents[2]


def specs_dir() -> Path:
    """The folder of spec files: ``$CNMC_REPRO_SPECS`` if set, else ``benchmarks/`` of the checkout."""
    env = os.environ.get("CNMC_REPRO_SPECS")
    return Path(env) if env else project_root() / "benchmarks"
