"""``--executor ray`` on one local Ray instance with logical resources: 4 CPUs and 2 GPUs that are only names
(this machine has no GPU). Every task asks for one CPU and one of the logical GPUs and trains on the CPU
(``Options.task_resources``, the test's way to ask for GPUs while the device is the CPU), so that Ray's
placement is what a machine of two GPUs gets: at most two runs at once, each with its own
``CUDA_VISIBLE_DEVICES``. The workload: alexnet and squeezenet under seeds 0 and 1 and an ensemble of the two
(run on the driver), on tiny data, smoke profile, one torch thread a run; the local executor makes the same
runs for comparison. CPU training with one seed and one thread count repeats exactly."""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import reduced_specs

from cnmc_repro.paths import specs_dir
from cnmc_repro.run.engine import Options, run
from cnmc_repro.store.folders import Store, load_epochs, load_json

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

IDS = ["pair"]  # the ensemble of alexnet and squeezenet: its members train first
TRAINED = ["alexnet", "squeezenet"]


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    """A reduced spec set: alexnet, squeezenet, an ensemble of the two, and dataset.yaml."""
    pair = yaml.safe_load((specs_dir() / "ensembles.yaml").read_text())
    pair.update(id="pair", title="AlexNet and SqueezeNet averaged", ensemble={"combinations": [TRAINED]})
    with reduced_specs(tmp_path_factory.mktemp("specs"), TRAINED, {"pair.yaml": yaml.safe_dump(pair)}) as folder:
        yield folder


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _options(data: Path, results: Path, **kw) -> Options:
    return Options(data=str(data), profile="smoke", device="cpu", results=results, seeds=(0, 1), threads=1, **kw)


@pytest.fixture(scope="module")
def local_runs(specs, tiny_data_ro, tmp_path_factory):
    return run(IDS, _options(tiny_data_ro, tmp_path_factory.mktemp("local"), quiet=True))


@pytest.fixture(scope="module")
def ray_runs(specs, ray_instance, tiny_data_ro, tmp_path_factory):
    """The same runs through Ray, and what the driver printed."""
    options = _options(tiny_data_ro, tmp_path_factory.mktemp("ray"), executor="ray")
    options.task_resources = {"num_cpus": 1, "num_gpus": 1}
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        statuses = run(IDS, options)
    return statuses, err.getvalue()


def _stored(status) -> dict:
    """What a run stored that decides its figures: its key, epochs (without times) and record's figures."""
    record = load_json(status.run_dir / "result.json")
    epochs = [{k: v for k, v in e.items() if k != "seconds"} for e in load_epochs(status.run_dir)]
    figures = {k: record[k] for k in ("validation", "test", "predictions", "best_ensemble")}
    ensembles = [{k: v for k, v in e.items() if k != "member_runs"} for e in record["ensembles"]]  # ids hold times
    return {
        "key": record["run_key"],
        "series": record["series_key"],
        "epochs": epochs,
        "ensembles": ensembles,
        **figures,
    }


def test_ray_stores_exactly_the_runs_and_figures_of_the_local_executor(local_runs, ray_runs):
    statuses, _ = ray_runs
    order = [(s.spec_id, s.seed) for s in statuses]
    assert (
        order
        == [(s.spec_id, s.seed) for s in local_runs]
        == [(spec, seed) for seed in (0, 1) for spec in ("alexnet", "squeezenet", "pair")]
    )
    assert all(s.ran for s in statuses)
    for ours, theirs in zip(statuses, local_runs, strict=True):
        assert _stored(ours) == _stored(theirs), ours.spec_id
    results = statuses[0].run_dir.parent
    assert len(Store(results).runs()) == 6 and not list((results / ".partial").iterdir())
    ensemble = load_json(statuses[2].run_dir / "result.json")["ensembles"][0]
    assert ensemble["member_runs"] == [s.run_dir.name for s in statuses[:2]]  # seed 0's members


def _trained(statuses):
    return [s for s in statuses if s.spec_id in TRAINED]


def test_at_most_as_many_runs_train_at_once_as_there_are_gpus_each_on_its_own(ray_runs):
    statuses, _ = ray_runs
    runs = _trained(statuses)
    envs = {s.run_dir: load_json(s.run_dir / "environment.json") for s in runs}
    assert {e["cuda_visible_devices"] for e in envs.values()} == {"0", "1"}
    assert all(e["torch_threads"] == 1 and e["device"] == "cpu" for e in envs.values())
    # at any moment, the runs in flight: at most two (the logical GPUs) though the CPUs allow four
    moments = sorted({s.started for s in runs})
    in_flight = [[s for s in runs if s.started <= t < s.finished] for t in moments]
    assert max(len(now) for now in in_flight) == 2
    for a, b in itertools.combinations(runs, 2):
        if a.started < b.finished and b.started < a.finished:  # they trained at the same time
            assert envs[a.run_dir]["cuda_visible_devices"] != envs[b.run_dir]["cuda_visible_devices"]
            assert envs[a.run_dir]["pid"] != envs[b.run_dir]["pid"]


def test_an_ensemble_waits_for_its_members(ray_runs):
    statuses, _ = ray_runs
    for seed in (0, 1):
        (ensemble,) = [s for s in statuses if s.spec_id == "pair" and s.seed == seed]
        members = [s for s in _trained(statuses) if s.seed == seed]
        assert ensemble.started >= max(m.finished for m in members)


def test_the_driver_shows_every_epoch_of_the_workers_and_the_time_left(ray_runs):
    statuses, err = ray_runs
    assert "Ray: 4 CPUs and 2 GPUs, each run asks for {'num_cpus': 1, 'num_gpus': 1}" in err
    for s in _trained(statuses):
        label = f"{s.spec_id} seed {s.seed}"
        for stage in ("frozen", "unfrozen"):  # smoke: four epochs a stage
            lines = [x for x in err.splitlines() if f"{label} stage {stage} epoch " in x]
            assert [x.split(" epoch ")[1].split()[0] for x in lines] == ["1/4", "2/4", "3/4", "4/4"]
            assert all("accuracy=" in x and "left of all" in x for x in lines)
        assert f"{label} done in" in err
    assert err.count("CUDA_VISIBLE_DEVICES=") == 4  # each task says where it trains


def test_a_second_invocation_trains_nothing(ray_runs, tiny_data_ro):
    statuses, _ = ray_runs
    options = _options(tiny_data_ro, statuses[0].run_dir.parent, executor="ray", quiet=True)
    options.task_resources = {"num_cpus": 1, "num_gpus": 1}
    again = run(IDS, options)
    assert not any(s.ran for s in again) and [s.run_dir for s in again] == [s.run_dir for s in statuses]


def test_ctrl_c_cancels_the_tasks_and_keeps_the_finished_runs(specs, local_runs, tiny_data_ro, tmp_path):
    """Ctrl-C on a driver (a process of its own, that starts its own Ray) once a run has finished: it exits with
    130, the finished runs stay, no task holds a key any more, and the next invocation makes only the others,
    with the figures of an uninterrupted invocation."""
    results, err_path = tmp_path / "results", tmp_path / "driver.err"
    args = ["run", *IDS, "--seeds", "2", "--data", tiny_data_ro, "--profile", "smoke", "--device", "cpu"]
    args += ["--threads", "1", "--executor", "ray", "--results", results]
    with open(err_path, "w") as err:
        driver = subprocess.Popen(
            [sys.executable, "-m", "reproduce", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=err,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 400
    while " done in " not in err_path.read_text():
        assert driver.poll() is None and time.monotonic() < deadline, err_path.read_text()
        time.sleep(0.2)
    driver.send_signal(signal.SIGINT)
    driver.communicate(timeout=300)
    err = err_path.read_text()
    assert driver.returncode == 130 and "interrupted: what finished is kept" in err, err
    kept = Store(results).runs()
    assert 1 <= len(kept) < 6 and not list((results / ".locks").glob("*.json"))
    again = run(IDS, _options(tiny_data_ro, results, quiet=True))
    assert sorted(s.run_dir for s in again if not s.ran) == sorted(kept)
    for ours, theirs in zip(again, local_runs, strict=True):
        assert _stored(ours) == _stored(theirs), ours.spec_id
