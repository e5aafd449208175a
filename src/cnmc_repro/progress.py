"""Progress of long work on stderr, through one mechanism (tqdm): a bar for loops over cells (hashing,
preparing, writing the built-in data), and for runs a line per run and per epoch with the time left.

Time left is projected from the work done so far, counted in image-epochs weighted by pixels (an epoch
at 224 px weighs (224/64)^2 as much as one at 64 px); runs that train at once (on the workers of a Ray
cluster) add their work as it is done, so the projection follows the rate of all of them together. Lines
go through ``tqdm.write``, so that they never break a bar that is being drawn.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def bar(items: Iterable[T], desc: str, total: int | None = None, show: bool = True) -> Iterator[T]:
    """``items`` with a progress bar on stderr (cells counted), drawn only on a terminal and when ``show``;
    it is cleared when done."""
    return iter(tqdm(items, desc=desc, total=total, unit="cell", disable=not show or None, leave=False))


def _fmt(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    def __init__(self, total_units: float, n_runs: int, stream: TextIO | None = None, quiet: bool = False):
        self.total, self.done = max(total_units, 1e-9), 0.0
        self.n_runs, self.index = n_runs, 0
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def say(self, text: str) -> None:
        if not self.quiet:
            tqdm.write(text, file=self.stream)

    def start_run(self, run: str, what: str) -> None:
        self.index += 1
        self.say(f"[{self.index}/{self.n_runs}] {run}: {what}")

    def skip_run(self, spec_id: str, why: str, units: float) -> None:
        self.index += 1
        self.skip_units(units)
        self.say(f"[{self.index}/{self.n_runs}] {spec_id}: {why}")

    def skip_units(self, units: float) -> None:
        """Work that needs no doing after all (an epoch an interrupted run finished)."""
        self.total = max(self.total - units, 1e-9)

    def epoch(self, run: str, where: str, epoch: int, epochs: int, record: dict, units: float) -> None:
        self.done += units
        elapsed = time.perf_counter() - self.t0
        left = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        figures = " ".join(
            f"{k}={record[k]:.4f}" for k in ("train_loss", "valid_loss", "accuracy") if record.get(k) is not None
        )
        self.say(
            f"    {run} {where} epoch {epoch + 1}/{epochs}  {figures}  "
            f"({record.get('seconds', 0):.1f}s; about {_fmt(left)} left of all)"
        )

    def note(self, text: str) -> None:
        self.say(f"    {text}")
