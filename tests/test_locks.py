"""One results folder for several processes: the lock of a run key, the removal of unfinished run folders only
when their writer is gone, finishing that never replaces a run folder, and the engine leaving a key another
process holds for later. Another process is a real one here (a child that takes a lock and waits), since
``flock`` is what the kernel gives back when a process dies."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cnmc_repro.store.folders import PARTIAL, Store
from cnmc_repro.store.locks import RunLock
from cnmc_repro.store.record import Outcome, RunRecord

HOLD = """
import sys
from pathlib import Path
from cnmc_repro.store.locks import RunLock
lock = RunLock(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
assert lock.acquire()
print("held", flush=True)
sys.stdin.read()  # until the test closes stdin, or kills this process
lock.release()
"""

KEY_A, KEY_B, KEY_C = "a" * 16, "b" * 16, "c" * 16


def hold(results: Path, key: str, run: str = "alexnet seed 0") -> subprocess.Popen:
    """A child process holding ``key``'s lock until its stdin is closed."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(results), key, run], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_key_is_held_by_one_process_and_freed_when_it_dies(tmp_path):
    child = hold(tmp_path, KEY_A)
    lock = RunLock(tmp_path, KEY_A, "alexnet seed 0")
    assert not lock.acquire()
    holder = lock.holder()
    assert (holder.host, holder.pid, holder.run) == (platform.node(), child.pid, "alexnet seed 0")
    assert RunLock(tmp_path, KEY_B, "squeezenet seed 0").acquire()  # another key is free
    child.send_signal(signal.SIGKILL)  # no chance to let go: the kernel does
    child.wait()
    assert lock.acquire() and lock.holder().pid == os.getpid()
    lock.release()
    assert lock.holder() is None and lock.acquire()


def test_unfinished_run_folders_are_removed_only_when_their_writer_is_gone(tmp_path):
    partial = tmp_path / PARTIAL
    for name in (KEY_A, KEY_B, "alexnet-smoke-seed0-20260101-000000", "vgg19-smoke-seed0-20260101-000000"):
        (partial / name).mkdir(parents=True)
        (partial / name / "epochs.jsonl").write_text("{}\n")
    # a folder of the layout before the locks: named by its run id, its key in spec.json
    (partial / "alexnet-smoke-seed0-20260101-000000" / "spec.json").write_text(json.dumps({"run_key": KEY_C}))
    writers = [hold(tmp_path, KEY_A), hold(tmp_path, KEY_C)]
    store = Store(tmp_path)
    assert store.sweep() == 2  # B's writer is gone, and so is the one that never wrote spec.json
    assert sorted(p.name for p in partial.iterdir()) == sorted([KEY_A, "alexnet-smoke-seed0-20260101-000000"])
    assert (partial / KEY_A / "epochs.jsonl").read_text() == "{}\n"  # a live writer's files are untouched
    for child in writers:
        child.stdin.close()
        child.wait()
    assert store.sweep() == 2 and not list(partial.iterdir())


def _record(run_id: str, key: str) -> RunRecord:
    header = dict(series_key="s", spec="alexnet", kind="train", profile="smoke", seed=0, device="cpu")
    header |= dict(precision="fp32")
    header |= dict(pretrained=False, synthetic=True, data_root="/d", data_fingerprint="f", seconds=1.0)
    return RunRecord.of(Outcome(), run_id=run_id, run_key=key, **header)


def test_finishing_never_replaces_a_run_folder_finished_in_the_same_second(tmp_path):
    store = Store(tmp_path)
    first = store.begin("alexnet", "smoke", 0, KEY_A)
    second = store.begin("alexnet", "smoke", 0, KEY_B)  # another key (say, another device) in the same second
    assert first.run_id == second.run_id and first.dir != second.dir  # unfinished: one folder per key
    a = first.finish(_record(first.run_id, KEY_A))
    b = second.finish(_record(second.run_id, KEY_B))
    assert b.name == f"{a.name}-2" and json.loads((b / "result.json").read_text())["run_id"] == b.name
    assert store.find(KEY_A) == a and store.find(KEY_B) == b
    third = store.begin("alexnet", "smoke", 0, KEY_C)
    third.run_id = a.name  # begun in the same second as the others
    assert third.finish(_record(third.run_id, KEY_C)).name == f"{a.name}-3"


def test_a_run_another_process_holds_is_left_for_later(tiny_data_ro, tmp_path, monkeypatch, capsys):
    """With a stand-in for training: alexnet's key is held by another process, so squeezenet trains first, and
    alexnet once the other process has let go of it."""
    from cnmc_repro.run import experiments
    from cnmc_repro.run.engine import Engine, Options
    from cnmc_repro.store.record import Predictions

    options = Options(data=str(tiny_data_ro), profile="smoke", device="cpu", results=tmp_path, threads=1)
    engine = Engine(options)
    child = hold(tmp_path, engine.key("alexnet", 0))
    trained = []

    def made_up(spec, ctx, writer) -> Outcome:
        trained.append(spec.id)
        child.stdin.close()  # the other process lets go while this one trains squeezenet
        preds = Predictions(cells=["a", "b"], targets=[0, 1], prob_all=[0.9, 0.2])
        return Outcome(test=experiments.M.summary([0, 1], [0.9, 0.2]), predictions={"test": preds})

    monkeypatch.setitem(experiments.RUNNERS, "train", made_up)
    outcomes = engine.run(["alexnet", "squeezenet"])
    child.wait()
    assert trained == ["squeezenet", "alexnet"] and [o.ran for o in outcomes] == [True, True]
    err = capsys.readouterr().err
    assert f"alexnet seed 0: another process ({platform.node()}, pid {child.pid}) is running it" in err
    assert not list((tmp_path / PARTIAL).iterdir()) and not list((tmp_path / ".locks").glob("*.json"))


def test_ray_without_the_extra_is_one_sentence(tmp_path, monkeypatch, cli):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    code, _, err = cli("run", "alexnet", "--executor", "ray", "--results", tmp_path)
    assert code == 2 and "Traceback" not in err
    assert "--executor ray needs Ray, which is not installed here: pip install -e '.[ray]'" in err


def test_a_task_that_cannot_see_the_results_or_the_data_says_so(tmp_path):
    from cnmc_repro.errors import UserError
    from cnmc_repro.run.engine import Options
    from cnmc_repro.run.executors import check_visible

    check_visible(Options(results=tmp_path))
    with pytest.raises(UserError, match="cannot see the results folder .*/elsewhere: with --executor ray the"):
        check_visible(Options(results=tmp_path / "elsewhere"))
    with pytest.raises(UserError, match="cannot see the data folder /nowhere/C-NMC: .* at the same path on every"):
        check_visible(Options(results=tmp_path, data="/nowhere/C-NMC"))
