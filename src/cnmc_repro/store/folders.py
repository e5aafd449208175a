"""Run folders under ``results/``: one object writes them all, atomically.

    results/<spec>-<profile>-seed<seed>-<time>/
        spec.json         the resolved spec and the run key (written first)
        environment.json  git commit, library versions, device and driver
        epochs.jsonl      one line per finished epoch
        lr_find.json      the learning-rate finder's curve, where the spec asks for it
        checkpoint.pth    the final model weights
        result.json       the run record (``record.RunRecord``): what the run measured, written last

A run is written into ``results/.partial/<run id>/`` and renamed into place when it has finished, so an
interrupted run never leaves a folder that looks finished; the next invocation removes it and starts the
run again. A run made of several parts (the folds of a k-fold run, the probes of a Bayesian search, the
image sizes of progressive resizing) keeps each finished part in ``results/.resume/<run key>/`` until the
run finishes, and an interrupted one goes on from its last finished part.

The run key hashes everything that decides the figures: resolved spec, profile, seed, data, code version
and device type. A finished run with the same key is not redone. The series key hashes the same but the
seed: the runs of one series are one recipe's runs under several seeds, whose spread the report shows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnmc_repro.atomic import write_atomic, write_json_atomic
from cnmc_repro.store.record import RunRecord, parse, upgrade

PARTIAL = ".partial"
RESUME = ".resume"


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
    made of several, under the run key, for an interrupted run to go on from."""

    def __init__(self, store: Store, run_id: str, key: str):
        self.store, self.run_id, self.key = store, run_id, key
        self.dir = store.root / PARTIAL / run_id
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self._epochs = open(self.dir / "epochs.jsonl", "a")
        self.parts = Parts(store.root / RESUME / key)

    def json(self, name: str, obj: Any) -> None:
        write_json_atomic(self.dir / name, obj)

    def epoch(self, record: dict[str, Any]) -> None:
        self._epochs.write(json.dumps(record) + "\n")
        self._epochs.flush()

    def checkpoint(self, state: dict) -> None:
        import torch

        write_atomic(self.dir / "checkpoint.pth", lambda f: torch.save(state, f))

    def finish(self, record: RunRecord) -> Path:
        """Write ``result.json`` (last) and move the folder into place; the finished parts are dropped."""
        self._epochs.close()
        self.json("result.json", record.to_json())
        final = self.store.root / self.run_id
        os.replace(self.dir, final)
        self.parts.clear()
        return final

    def abandon(self) -> None:
        self._epochs.close()


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
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_id = f"{spec_id}-{profile}-seed{seed}-{stamp}"
        n = 1
        while (self.root / run_id).exists():
            n += 1
            run_id = f"{spec_id}-{profile}-seed{seed}-{stamp}-{n}"
        return RunWriter(self, run_id, key)

    def clear_partial(self) -> int:
        """Remove what interrupted runs left behind; returns how many there were."""
        partial = self.root / PARTIAL
        if not partial.is_dir():
            return 0
        stale = [p for p in partial.iterdir()]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return len(stale)


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
