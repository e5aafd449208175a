"""Faults a user meets: a process killed with SIGKILL at the worst moments, a full disk, a read-only results
folder, a results folder written by a newer version, a damaged record. Each gives one sentence and a non-zero
exit, and leaves nothing half-written: the next invocation ends with the figures of an uninterrupted run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import reduced_specs

from cnmc_repro.analysis import regression

# `reproduce all` with a kill patched in: `point` names where, as (function to patch, condition) in KILLERS
WRAPPER = """
import io, os, signal, sys
import cnmc_repro.atomic as atomic
point, args = sys.argv[1], sys.argv[2:]
counts = {}

def kill():
    os.kill(os.getpid(), signal.SIGKILL)

def seen(name):
    counts[name] = counts.get(name, 0) + 1
    return counts[name]

real_write = atomic.write_atomic

def write_atomic(path, write, mode="wb"):
    if str(path).endswith("state-fold-0.pt"):
        seen("fold 0 done")
    wanted = {"prepare": (".npy", 5), "result": ("result.json", 1), "part": ("state-fold-1.pt", 1)}.get(point)
    if wanted and str(path).endswith(wanted[0]) and seen(point) == wanted[1]:
        def half(f):  # half the bytes into the temporary file, then killed
            buf = io.BytesIO() if "b" in mode else io.StringIO()
            write(buf)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            kill()
        return real_write(path, half, mode)
    return real_write(path, write, mode)

for module in ("cnmc_repro.atomic", "cnmc_repro.data.prepare", "cnmc_repro.store.folders"):
    __import__(module)
    sys.modules[module].write_atomic = write_atomic

real_rename = os.rename

def rename(src, dst, *a, **k):
    if ".partial" in str(src) and point == "rename":
        kill()  # the run's folder is complete, not yet in place
    out = real_rename(src, dst, *a, **k)
    if ".partial" in str(src) and point == "renamed" and "kfold" in str(dst):
        kill()  # in place, its finished parts not yet dropped
    return out

os.rename = rename

from cnmc_repro.run import batches
real_iter = batches.DeviceBatches.__iter__

def batches_iter(self):
    for batch in real_iter(self):
        if point == "epoch" and self.shuffle and counts.get("fold 0 done"):
            kill()  # the second fold's first epoch begun: its first batch drawn
        yield batch

batches.DeviceBatches.__iter__ = batches_iter
from reproduce.cli import main
sys.exit(main(args))
"""

# in order: each invocation is killed at its point, and the next goes on from what the one before left
POINTS = ["prepare", "result", "rename", "epoch", "part", "renamed"]


def _args(data: Path, results: Path) -> list[str]:
    return ["all", "--data", str(data), "--profile", "smoke", "--device", "cpu", "--no-pretrained"] + [
        "--threads",
        "1",
        "--results",
        str(results),
    ]


def _half_written(*folders: Path) -> list[str]:
    """Whatever under ``folders`` is not whole: temporary files, unfinished run folders and parts, files that do
    not parse, cache entries that do not load, and run keys stored twice."""
    out, keys = [], []
    for folder in folders:
        for path in folder.rglob("*"):
            rel = f"{folder.name}/{path.relative_to(folder)}"
            if path.name.endswith(".tmp") or (
                path.is_dir() and path.name in (".partial", ".resume") and any(path.iterdir())
            ):
                out.append(rel)
            elif path.suffix == ".json":
                try:
                    data = json.loads(path.read_text())
                except ValueError:
                    out.append(rel)
                    continue
                if path.name == "result.json":
                    keys.append(data["run_key"])
            elif path.name == "epochs.jsonl":
                try:
                    [json.loads(line) for line in path.read_text().splitlines()]
                except ValueError:
                    out.append(rel)
            elif path.suffix == ".npy":
                try:
                    np.load(path, allow_pickle=False)
                except ValueError:
                    out.append(rel)
    out += [f"run key {k} stored twice" for k in set(keys) if keys.count(k) > 1]
    return out


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    with reduced_specs(tmp_path_factory.mktemp("specs"), ["alexnet", "kfold"]) as folder:
        yield folder


@pytest.mark.slow
def test_sigkill_at_every_point_then_the_next_invocation_ends_as_an_uninterrupted_run(
    specs, tiny_data_ro, tmp_path, cli, monkeypatch
):
    whole = tmp_path / "uninterrupted"
    assert cli(*_args(tiny_data_ro, whole))[0] == 0

    results, cache = tmp_path / "results", tmp_path / "cache"  # a cold cache: the first kill is in preparation
    monkeypatch.setenv("CNMC_REPRO_CACHE", str(cache))
    for point in POINTS:
        proc = subprocess.run(
            [sys.executable, "-c", WRAPPER, point, *_args(tiny_data_ro, results)], capture_output=True
        )
        assert proc.returncode == -signal.SIGKILL, f"not killed at {point}: {proc.stderr.decode()[-2000:]}"
    print(f"killed at {len(POINTS)} points: {', '.join(POINTS)}")
    assert list((results / ".resume").iterdir()), "the last kill leaves the k-fold run's finished parts"

    code, out, err = cli(*_args(tiny_data_ro, results))
    assert code == 0, err
    assert regression.against(results, whole) == []  # every figure, to the last bit
    assert _half_written(results, cache) == []


def _one_sentence(err: str) -> str:
    """The one error line of a command's standard error (progress lines may come before it), and no traceback."""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def _mount(*args: str) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of ``size`` at ``path`` where this user may mount one; else None (the caller patches the writer)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=True)


def _full(monkeypatch):
    """Without a tmpfs: every atomic write past the first few fails as on a full disk."""
    from cnmc_repro import atomic

    real, calls = atomic.write_atomic, []

    def write_atomic(path, write, mode="wb"):
        calls.append(path)
        if len(calls) > 3:
            raise OSError(28, os.strerror(28), str(path))
        return real(path, write, mode)

    for module in ("cnmc_repro.atomic", "cnmc_repro.data.prepare", "cnmc_repro.store.folders"):
        monkeypatch.setattr(f"{module}.write_atomic", write_atomic)


@pytest.mark.slow
@pytest.mark.parametrize("where", ["results", "cache"])
def test_a_full_disk_gives_one_sentence_and_leaves_nothing_half_written(
    specs, tiny_data_ro, tmp_path, cli, monkeypatch, where
):
    with small_disk(tmp_path / "disk", "600k") as disk:
        folder = disk or tmp_path / "disk"
        if disk is None:
            _full(monkeypatch)
        results = folder if where == "results" else tmp_path / "results"
        cache = folder if where == "cache" else tmp_path / "cache"
        monkeypatch.setenv("CNMC_REPRO_CACHE", str(cache))
        code, out, err = cli(*_args(tiny_data_ro, results))
        print(f"full disk ({'tmpfs' if disk else 'patched writer'}) under the {where}: {err.strip().splitlines()[-1]}")
        error = _one_sentence(err)
        assert code == 2 and "No space left on device" in error and "the disk is full" in error
        assert _half_written(folder) == []


def _damaged(results: Path, text: str) -> Path:
    from fake_runs import write_alexnet

    from cnmc_repro.spec.load import load_all

    run = write_alexnet(results, load_all())
    (run / "result.json").write_text(text)
    return run / "result.json"


@pytest.mark.parametrize(
    "text, says",
    [
        ('{"schema_version": 99, "spec": "alexnet"}', "was written by a newer version of the suite"),
        ('{"schema_version": 3, "spec": "alex', "is not a run record"),
    ],
    ids=["newer schema", "corrupt"],
)
@pytest.mark.parametrize("command", ["list", "report", "show alexnet"])
def test_a_record_the_suite_cannot_read_is_named_in_one_sentence(specs, tmp_path, cli, text, says, command):
    path = _damaged(tmp_path, text)
    code, out, err = cli(*command.split(), "--results", tmp_path)
    error = _one_sentence(err)
    assert code == 2 and str(path) in error and says in error


def test_a_read_only_results_folder_is_named_in_one_sentence(specs, tiny_data_ro, tmp_path, cli, monkeypatch):
    source, folder = tmp_path / "writable", tmp_path / "read-only"
    source.mkdir()
    folder.mkdir()
    if not (_mount("--bind", str(source), str(folder)) and _mount("-o", "remount,bind,ro", str(folder))):
        pytest.skip("cannot mount a read-only folder here (needs root)")
    try:
        for args in (_args(tiny_data_ro, folder), ["report", "--results", str(folder)]):
            code, out, err = cli(*args)
            error = _one_sentence(err)
            assert code == 2 and "Read-only file system" in error and str(folder) in error
    finally:
        subprocess.run(["umount", str(folder)], check=True)
