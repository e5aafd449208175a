"""The finished runs a report or ``show`` reads: the latest run of every spec, from its folder."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnmc_repro.spec.schema import Spec
from cnmc_repro.store.folders import Store, load_epochs, load_json


@dataclass
class Run:
    """One finished run folder, read (every file may be missing or unreadable: then it is empty)."""

    dir: Path
    meta: dict[str, Any]  # spec.json
    env: dict[str, Any]  # environment.json
    result: dict[str, Any]  # result.json
    epochs: list[dict[str, Any]] = field(default_factory=list)
    lr_find: dict[str, Any] | None = None

    @classmethod
    def read(cls, run_dir: Path) -> Run:
        return cls(
            dir=run_dir,
            meta=load_json(run_dir / "spec.json") or {},
            env=load_json(run_dir / "environment.json") or {},
            result=load_json(run_dir / "result.json") or {},
            epochs=load_epochs(run_dir),
            lr_find=load_json(run_dir / "lr_find.json"),
        )

    @property
    def synthetic(self) -> bool:
        data = self.meta.get("data") or {}
        return bool(data.get("synthetic", self.result.get("synthetic", False)))

    @property
    def seconds(self) -> float:
        return float(self.result.get("seconds") or 0.0)

    @property
    def finished(self) -> dt.datetime:
        stamp = (self.dir / "result.json").stat().st_mtime
        return dt.datetime.fromtimestamp(stamp, dt.UTC)

    def info(self) -> dict[str, Any]:
        """What the template says about the run."""
        return {
            "id": self.dir.name,
            "profile": self.meta.get("profile", self.result.get("profile")),
            "seed": self.meta.get("seed", self.result.get("seed")),
            "device": self.result.get("device") or self.env.get("device"),
            "gpu": self.env.get("gpu"),
            "seconds": self.seconds,
            "pretrained": self.meta.get("pretrained", self.result.get("pretrained")),
            "synthetic": self.synthetic,
            "finished": self.finished,
            "train_cells": self.result.get("train_cells"),
            "valid_cells": self.result.get("valid_cells"),
        }


def collect_runs(results_dir: Path, specs: dict[str, Spec], profile: str | None) -> dict[str, Run | None]:
    """The latest finished run of every spec (None where there is none); nothing is created on disk."""
    if not Path(results_dir).is_dir():
        return {sid: None for sid in specs}
    store = Store(results_dir)
    runs: dict[str, Run | None] = {}
    for sid in specs:
        run_dir = store.latest(sid, profile)
        runs[sid] = Run.read(run_dir) if run_dir is not None else None
    return runs


def report_order(specs: dict[str, Spec]) -> list[str]:
    """Specs in the order of chapter 4 (section 4.1.1 to 4.2.5); an ensemble after its members' section."""

    def key(sid: str) -> tuple:
        spec = specs[sid]
        section = tuple(int(p) for p in re.findall(r"\d+", spec.report.section))
        return (section, spec.kind == "ensemble", sid)

    return sorted(specs, key=key)
