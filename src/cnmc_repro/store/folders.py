"""Run folders under ``results/``: one object writes them all, atomically.

    results/<spec>-<profile>-seed<seed>-<time>/
        spec.json         the resolved spec and the run key (written first)
        environment.json  git commit, library versions, device and driver
        epochs.jsonl      one line per finished epoch
        lr_find.json      the learning-rate finder's curve, where the spec asks for it
        checkpoint.pth    the final model weights
        result.json       the run record (``record.RunRecord``): what the run measured, written last

A run is written into ``results/.partial/<run key>/`` and renamed into place when it has finished, so an
interrupted run never leaves a folder that looks finished. A run made of several parts (the folds of a
k-fold run, the probes of a Bayesian search, the image sizes of progressive resizing) keeps each finished
part in ``results/.resume/<run key>/`` until the run finishes, and an interrupted one goes on from its last
finished part.

Several processes may share one results folder (``locks``): whoever writes a run key holds its lock, so
what ``.partial/`` and ``.resume/`` hold under a key belongs to the lock's holder, and is stale, to be
removed or gone on from, once the lock can be taken. Finishing is idempotent: a run whose folder was moved
into place is found by its key, and a process that finds it trains nothing.

The run key hashes everything that decides the figures: resolved spec, profile, seed, data, code version
and device type. A finished run with the same key is not redone. The series key hashes the same but the
seed: the runs of one series are one recipe's runs under several seeds, whose spread the report shows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnmc_repro.atomic import remove_stale_temps, write_atomic, write_json_atomic
from cnmc_repro.store.locks import RunLock
from cnmc_repro.store.record import RunRecord, parse, upgrade

PARTIAL = ".partial"
RESUME = ".resume"
RUN_KEY = re.compile(r"[0-9a-f]{16}")  # run.keys.run_key: 16 hex digits


class Parts:
    """The finished parts of one run (folds, probes, image sizes), kept until the run finishes.

    ``<part>.json`` holds a part's outcome and epochs, and is written last: a part without it is not
    finished. ``state-<part>.pt`` holds what training needs to go on exactly after the part (weights,
    optimizer state, random generators); only the latest part's is kept.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def done(self, part: str) -> dict[str, Any] | None:
        return load_json(self.root / f"{part}.json")

    def count(self) -> int:
        return len(list(self.root.glob("*.json"))) if self.root.is_dir() else 0

    def save(self, part: str, record: dict[str, Any], state: dict | None = None) -> None:
        import torch

        if state is not None:
            write_atomic(self.root / f"state-{part}.pt", lambda f: torch.save(state, f))
        write_json_atomic(self.root / f"{part}.json", record)
        for old in self.root.glob("state-*.pt"):
            if old.name != f"state-{part}.pt":
                old.unlink(missing_ok=True)

    def has_state(self, part: str) -> bool:
        return (self.root / f"state-{part}.pt").is_file()

    def state(self, part: str) -> dict | None:
        import torch

        return torch.load(self.root / f"state-{part}.pt", weights_only=True) if self.has_state(part) else None

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class RunWriter:
    """Writes one run's folder; ``finish`` moves it into place. ``parts`` keeps the finished parts of a run
    made of several, under the run key, for an interrupted run to go on from. Its maker holds the key's lock,
    so an unfinished folder of the key found here is stale (its writer is gone) and is started afresh."""

    def __init__(self, store: Store, run_id: str, key: str):
        self.store, self.run_id, self.key = store, run_id, key
        self.dir = store.root / PARTIAL / key
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self._epochs = open(self.dir / "epochs.jsonl", "a")
        self.parts = store.parts(key)

    def json(self, name: str, obj: Any) -> None:
        write_json_atomic(self.dir / name, obj)

    def epoch(self, record: dict[str, Any]) -> None:
        self._epochs.write(json.dumps(record) + "\n")
        self._epochs.flush()

    def checkpoint(self, state: dict) -> None:
        import torch

        write_atomic(self.dir / "checkpoint.pth", lambda f: torch.save(state, f))

    def finish(self, record: RunRecord) -> Path:
        """Write ``result.json`` (last) and move the folder into place; the finished parts are dropped.

        The folder takes the run id, or the next free one (``-2``, ``-3``...) where another process finished
        a run of the same spec, profile and seed in the same second: renaming onto a run folder fails, it
        never replaces one."""
        self._epochs.close()
        while True:
            self.json("result.json", dataclasses.replace(record, run_id=self.run_id).to_json())
            final = self.store.root / self.run_id
            try:
                os.rename(self.dir, final)
                break
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY) and not final.exists():
                    raise
                self.run_id = self.store.free_run_id(self.run_id)
        self.parts.clear()
        return final

    def abandon(self) -> None:
        """A run that stopped (an error, Ctrl-C): its unfinished folder goes; its finished parts stay."""
        self._epochs.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class StoredRun:
    """One finished run folder as the report and ``show`` read it: its record, environment, epochs and
    learning-rate finder curve."""

    dir: Path
    record: RunRecord
    env: dict[str, Any]  # environment.json
    epochs: list[dict[str, Any]]  # epochs.jsonl
    lr_find: dict[str, Any] | None  # lr_find.json: lrs, losses, suggestion

    @property
    def finished(self) -> dt.datetime:
        return dt.datetime.fromtimestamp((self.dir / "result.json").stat().st_mtime, dt.UTC)


@dataclass
class Series:
    """The stored runs of one recipe that differ only by their seed (one series key): the newest run of each
    seed, by seed, and the newest run of all, the one the series was found from."""

    runs: list[StoredRun]
    latest: StoredRun

    @property
    def seeds(self) -> list[int]:
        return [r.record.seed for r in self.runs]

    @property
    def synthetic(self) -> bool:
        return any(r.record.synthetic for r in self.runs)


class Store:
    """The finished runs under one results folder, found by run key or by spec."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self._records: dict[Path, RunRecord] = {}  # finished run folders never change

    def runs(self) -> list[Path]:
        """Finished run folders, oldest first (by the time in the run id, which survives copying)."""
        if not self.root.is_dir():
            return []
        return sorted((p for p in self.root.iterdir() if p.is_dir() and (p / "result.json").is_file()), key=_run_time)

    def record(self, run_dir: Path) -> RunRecord:
        """The record of a finished run; one sentence naming the file if it cannot be read."""
        if run_dir not in self._records:
            path = run_dir / "result.json"
            data = upgrade(load_json(path), load_json(run_dir / "spec.json") or {})
            self._records[run_dir] = parse(data, path)
        return self._records[run_dir]

    def load(self, run_dir: Path) -> StoredRun:
        return StoredRun(
            dir=run_dir,
            record=self.record(run_dir),
            env=load_json(run_dir / "environment.json") or {},
            epochs=load_epochs(run_dir),
            lr_find=load_json(run_dir / "lr_find.json"),
        )

    def _newest(self, matches: Callable[[RunRecord], bool]) -> Path | None:
        for p in reversed(self.runs()):
            if matches(self.record(p)):
                return p
        return None

    def find(self, key: str) -> Path | None:
        """The newest finished run with this key."""
        return self._newest(lambda r: r.run_key == key)

    def latest(self, spec_id: str, profile: str | None = None, seed: int | None = None) -> Path | None:
        """The newest finished run of a spec (of ``profile`` and ``seed``, when given)."""
        return self._newest(lambda r: r.spec == spec_id and profile in (None, r.profile) and seed in (None, r.seed))

    def series(self, run_dir: Path) -> list[Path]:
        """The runs of ``run_dir``'s series (its recipe, code and data, any seed): the newest run of each
        seed, in the order of the seeds."""
        key = self.record(run_dir).series_key
        newest: dict[int, Path] = {}
        for p in self.runs():  # oldest first: a later run of a seed (--force) replaces an earlier one
            record = self.record(p)
            if record.series_key == key:
                newest[record.seed] = p
        return [newest[seed] for seed in sorted(newest)]

    def load_series(self, run_dir: Path) -> Series:
        runs = [self.load(p) for p in self.series(run_dir)]
        return Series(runs=runs, latest=next(r for r in runs if r.dir == run_dir))

    def begin(self, spec_id: str, profile: str, seed: int, key: str) -> RunWriter:
        """The writer of a new run of ``key``; the caller holds the key's lock (:meth:`lock`)."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return RunWriter(self, self.free_run_id(f"{spec_id}-{profile}-seed{seed}-{stamp}"), key)

    def free_run_id(self, run_id: str) -> str:
        """``run_id``, or with the next free count (``-2``, ``-3``...) where a run folder has that name."""
        base, n = run_id, 1
        if m := re.fullmatch(r"(.*-\d{8}-\d{6})-(\d+)", run_id):
            base, n = m.group(1), int(m.group(2))
        while (self.root / run_id).exists():
            n += 1
            run_id = f"{base}-{n}"
        return run_id

    def parts(self, key: str) -> Parts:
        """The finished parts of an unfinished run of ``key``."""
        return Parts(self.root / RESUME / key)

    def lock(self, key: str, run: str) -> RunLock:
        """The lock of a run key (``run`` names it in the holder's record: "<spec> seed <seed>")."""
        return RunLock(self.root, key, run)

    def sweep(self) -> int:
        """Remove what writers that are gone left: unfinished run folders (their key's lock is free; a live
        writer's stay), the finished parts of runs that were stored, and temporary files (``atomic``); returns
        how many were removed. A folder from before the locks, named by its run id,
        is matched with its key through its ``spec.json``; one without it lost its writer before its first file."""
        partial, resume = self.root / PARTIAL, self.root / RESUME
        removed = 0
        for entry in sorted(partial.iterdir()) if partial.is_dir() else []:
            key = entry.name if RUN_KEY.fullmatch(entry.name) else (load_json(entry / "spec.json") or {}).get("run_key")
            removed += self._remove_if_free(entry, key)
        # the finished parts of a run that was stored (its writer stopped before it dropped them)
        for entry in sorted(resume.iterdir()) if resume.is_dir() else []:
            if self.find(entry.name) is not None:
                removed += self._remove_if_free(entry, entry.name)
        return removed + remove_stale_temps(self.root)

    def _remove_if_free(self, entry: Path, key: str | None) -> int:
        """Remove ``entry`` unless the lock of ``key`` is held (by a live writer); 1 if removed."""
        lock = self.lock(key, "stale") if key else None
        if lock is not None and not lock.acquire():
            return 0  # a live writer's
        try:
            if entry.exists():  # not finished meanwhile by the writer that held the lock
                shutil.rmtree(entry, ignore_errors=True)
                return 1
            return 0
        finally:
            if lock is not None:
                lock.release()


def _run_time(run_dir: Path) -> tuple[str, int, float]:
    m = re.search(r"-(\d{8}-\d{6})(?:-(\d+))?$", run_dir.name)
    if not m:
        return ("", 0, run_dir.stat().st_mtime)
    return (m.group(1), int(m.group(2) or 1), 0.0)


def report_is_current(results_dir: Path) -> bool:
    """Whether ``report.html``, ``report.md`` and ``report.json`` exist and are newer than every finished run in
    ``results_dir``."""
    results_dir = Path(results_dir)
    outputs = [results_dir / name for name in ("report.html", "report.md", "report.json")]
    if not all(p.is_file() for p in outputs):
        return False
    newest = max(((p / "result.json").stat().st_mtime for p in Store(results_dir).runs()), default=0.0)
    return min(p.stat().st_mtime for p in outputs) >= newest


def load_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def load_epochs(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "epochs.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
