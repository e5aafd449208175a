"""Two ``reproduce all`` processes on one results folder: started at the same moment, the second a few seconds
after the first, and one of them killed with ``kill -9`` in the middle of a run and started again. Both exit
0, every run key is trained and stored once, no process deletes what the other wrote, and the figures are
those of one process alone. Reduced spec set (alexnet and squeezenet), tiny data, smoke profile, one torch
thread a run; the processes share the test's cache folder (prepared cells) too."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import reduced_specs

from cnmc_repro.run.engine import Options, run
from cnmc_repro.store.folders import Store, load_epochs, load_json

pytestmark = pytest.mark.slow

LABELS = ["alexnet seed 0", "squeezenet seed 0"]


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    with reduced_specs(tmp_path_factory.mktemp("specs"), ["alexnet", "squeezenet"]) as folder:
        yield folder


@pytest.fixture(scope="module")
def alone(specs, tiny_data_ro, tmp_path_factory):
    """The runs of one process alone, by run key."""
    options = Options(data=str(tiny_data_ro), profile="smoke", device="cpu", pretrained=False, threads=1, quiet=True)
    options.results = tmp_path_factory.mktemp("alone")
    return {_stored(s.run_dir)["key"]: s.run_dir for s in run(None, options)}


def _stored(run_dir: Path) -> dict:
    """A run's key, files and figures (epochs without their times)."""
    record = load_json(run_dir / "result.json")
    epochs = [{k: v for k, v in e.items() if k != "seconds"} for e in load_epochs(run_dir)]
    files = sorted(p.name for p in run_dir.iterdir())
    figures = {k: record[k] for k in ("validation", "test", "predictions")}
    return {"key": record["run_key"], "files": files, "epochs": epochs, **figures}


class Invocation:
    """``python -m reproduce all`` in a process of its own; its stderr goes to a file, read while it runs."""

    def __init__(self, data: Path, results: Path, name: str):
        self.err_path = results.parent / f"{results.name}-{name}.err"
        args = ["all", "--data", data, "--profile", "smoke", "--device", "cpu", "--no-pretrained"]
        args += ["--threads", "1", "--results", results]
        env = os.environ | {"PYTHONUNBUFFERED": "1"}
        with open(self.err_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "reproduce", *map(str, args)], stdout=subprocess.PIPE, stderr=err, env=env
            )

    def err(self) -> str:
        return self.err_path.read_text()

    def wait(self) -> int:
        self.process.communicate(timeout=600)
        return self.process.returncode

    def trained(self) -> list[str]:
        """The runs this process trained and stored."""
        return re.findall(r"^ +(\w+ seed \d) done in ", self.err(), re.M)


def _check_store(results: Path, alone: dict, invocations: list[Invocation]) -> None:
    """Every run key stored once, whole, with the figures of one process alone; trained by one process."""
    store = Store(results)
    keys = [store.record(p).run_key for p in store.runs()]
    assert sorted(keys) == sorted(alone)  # each key once
    for run_dir in store.runs():
        ours = _stored(run_dir)
        assert ours == _stored(alone[ours["key"]])  # every file there, the same figures
    trained = collections.Counter(label for i in invocations for label in i.trained())
    assert set(trained) <= set(LABELS) and max(trained.values()) == 1  # nothing trained twice
    assert not list((results / ".partial").glob("*")) and not list((results / ".resume").glob("*"))
    assert not list((results / ".locks").glob("*.json"))  # no holder left


@pytest.mark.parametrize("stagger", [0, 4], ids=["together", "staggered"])
def test_two_invocations_on_one_results_folder_train_each_run_once(stagger, alone, tiny_data_ro, tmp_path):
    results = tmp_path / "results"
    first = Invocation(tiny_data_ro, results, "first")
    time.sleep(stagger)
    second = Invocation(tiny_data_ro, results, "second")
    assert (first.wait(), second.wait()) == (0, 0), first.err() + second.err()
    _check_store(results, alone, [first, second])
    assert sorted(first.trained() + second.trained()) == sorted(LABELS)  # all of them, between the two
    if not stagger:  # both began with alexnet seed 0: one of them went on to the next runs first
        assert "another process" in first.err() + second.err()


def test_an_invocation_killed_mid_run_leaves_nothing_the_others_trust(alone, tiny_data_ro, tmp_path):
    results = tmp_path / "results"
    first, second = Invocation(tiny_data_ro, results, "first"), Invocation(tiny_data_ro, results, "second")
    deadline = time.monotonic() + 300
    while " epoch 1/4 " not in first.err():  # the first is in the middle of a run: it holds its key
        assert first.process.poll() is None and time.monotonic() < deadline, first.err()
        time.sleep(0.1)
    first.process.send_signal(signal.SIGKILL)
    first.wait()
    assert second.wait() == 0, second.err()
    again = Invocation(tiny_data_ro, results, "again")
    assert again.wait() == 0, again.err()
    _check_store(results, alone, [first, second, again])
