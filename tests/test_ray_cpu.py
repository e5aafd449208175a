"""``--executor ray`` on a CPU-only Ray instance of two CPUs, as on this 2-core machine with no GPU: each run asks
for as many CPUs as its torch threads, so one-thread runs train two at a time, never more (a task waiting on
Ray, as for its progress, lends its CPUs back, and a third run once started beside two). Four runs: alexnet and
squeezenet under seeds 0 and 1, on tiny data, smoke profile."""

from __future__ import annotations

import itertools

import pytest
from conftest import reduced_specs

from cnmc_repro.run.engine import Options, run
from cnmc_repro.store.folders import load_json

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

TRAINED = ["alexnet", "squeezenet"]


@pytest.fixture(scope="module")
def cpu_runs(tiny_data_ro, tmp_path_factory):
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        with reduced_specs(tmp_path_factory.mktemp("specs"), TRAINED):
            options = Options(
                data=str(tiny_data_ro),
                profile="smoke",
                device="cpu",
                results=tmp_path_factory.mktemp("results"),
                seeds=(0, 1),
                threads=1,
                executor="ray",
                quiet=True,
            )
            yield run(TRAINED, options)
    finally:
        ray.shutdown()


def test_one_thread_runs_train_as_many_at_once_as_there_are_cpus(cpu_runs):
    assert [(s.spec_id, s.seed) for s in cpu_runs] == [(a, seed) for seed in (0, 1) for a in TRAINED]
    assert all(s.ran for s in cpu_runs)
    moments = sorted(s.started for s in cpu_runs)
    in_flight = [sum(s.started <= t < s.finished for s in cpu_runs) for t in moments]
    assert max(in_flight) == 2, in_flight  # two CPUs: two at once, and never a third
    for a, b in itertools.combinations(cpu_runs, 2):
        if a.started < b.finished and b.started < a.finished:  # trained at the same time: two worker processes
            assert load_json(a.run_dir / "environment.json")["pid"] != load_json(b.run_dir / "environment.json")["pid"]
    assert all(load_json(s.run_dir / "environment.json")["torch_threads"] == 1 for s in cpu_runs)
