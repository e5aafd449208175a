"""Shared fixtures: every test works in its own cache folder on data the tests generate."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnmc_repro.data.synthetic import SynthLayout, synthesize

# The test command runs a worker a core (pytest-xdist, -n auto): one torch thread each, in the worker and in the
# processes it starts. Two threads a worker would make every step wait on a busy core; the tests' batches are
# tiny, and a second thread buys them nothing even on an idle machine.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if WORKER:
    os.environ["OMP_NUM_THREADS"] = "1"

SHARED_DATA = Path(os.environ.get("CNMC_SAMPLE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TINY = SynthLayout(folds=((2, 1, 8, 4), (2, 1, 8, 4), (2, 1, 8, 4)), prelim=(2, 2, 6, 4), final_cells=2, duplicates=1)


@pytest.fixture(autouse=True, scope="session")
def _one_thread_a_worker():
    if WORKER:
        import torch

        torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True, scope="session")
def _cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("CNMC_REPRO_CACHE")
    os.environ["CNMC_REPRO_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("CNMC_REPRO_CACHE", None)
    else:
        os.environ["CNMC_REPRO_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_data_ro(tmp_path_factory) -> Path:
    """A tiny synthetic C-NMC folder shared by the tests that only read it."""
    return synthesize(tmp_path_factory.mktemp("tiny") / "cnmc", seed=0, layout=TINY, progress=False)


@pytest.fixture
def tiny_data(tiny_data_ro, tmp_path) -> Path:
    """A private copy of the tiny folder, for tests that damage it."""
    dst = tmp_path / "cnmc"
    shutil.copytree(tiny_data_ro, dst)
    return dst


@contextlib.contextmanager
def reduced_specs(folder: Path, names: list[str], written: dict[str, str] | None = None) -> Iterator[Path]:
    """A reduced spec set in ``folder`` while the block runs (``CNMC_REPRO_SPECS``): copies of the specs
    ``names`` of benchmarks/ and of dataset.yaml (section 3.1's counts), and the ``written`` files."""
    from cnmc_repro.paths import specs_dir

    source = specs_dir()
    for name in [*names, "dataset"]:
        shutil.copy(source / f"{name}.yaml", folder / f"{name}.yaml")
    for name, text in (written or {}).items():
        (folder / name).write_text(text)
    with pytest.MonkeyPatch.context() as m:
        m.setenv("CNMC_REPRO_SPECS", str(folder))
        yield folder


def real_data(name: str) -> Path:
    """A folder of the real C-NMC sample, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"the real C-NMC sample {path} is absent")
    return path


@pytest.fixture
def cli(capsys):
    """Run ``python -m reproduce`` in-process: returns (exit code, stdout, stderr)."""
    from reproduce.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def one_torch_thread():
    """One torch thread, for a test that trains tiny batches: a second OpenMP thread buys nothing there, and
    on a machine whose cores are busy its waiting can make a step many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
