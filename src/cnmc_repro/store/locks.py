"""One lock per run key, so that several processes share one results folder safely: on one machine (two
``reproduce all`` at once) or on the nodes of a Ray cluster. A key is trained by one process at a time and
never twice, and an unfinished run folder is removed only when its writer is gone.

    results/.locks/<run key>.lock   the lock: ``fcntl.flock`` through the ``filelock`` package; the kernel
                                    releases it when its holder exits, however it exits (``kill -9`` too)
    results/.locks/<run key>.json   who holds it (host, pid, run, since): written once the lock is taken,
                                    read by a process that waits for it, to say whom it waits for

A lock that can be taken has no live holder, so what its key left in ``results/.partial/`` is stale.
``flock`` holds across the processes of one machine on any local filesystem, and across machines on NFS v4
(Linux maps it to the server's byte-range locks; a crashed client's lock lasts until its lease expires,
90 s by default) and on Lustre mounted with ``-o flock`` (not ``localflock``, which locks within one node
only). Where ``flock`` is missing, filelock falls back to a marker-file lock and warns.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from cnmc_repro.atomic import write_json_atomic

LOCKS = ".locks"


@dataclass(frozen=True)
class Holder:
    """Who holds a run key's lock, as its holder wrote it down."""

    host: str
    pid: int
    run: str  # "<spec> seed <seed>"
    since: float  # time.time() when it took the lock

    def describe(self) -> str:
        return f"{self.host}, pid {self.pid}"


class RunLock:
    """The lock of one run key under a results folder. ``acquire`` takes it (or says it cannot, without
    waiting), ``wait`` blocks until it is free, ``release`` gives it back."""

    def __init__(self, results: Path, key: str, run: str):
        folder = Path(results) / LOCKS
        folder.mkdir(parents=True, exist_ok=True)
        self.key, self.run = key, run
        self.path, self.holder_path = folder / f"{key}.lock", folder / f"{key}.json"
        self._lock = FileLock(self.path, thread_local=False)

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; False, at once, if somebody does."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        self._taken()
        return True

    def wait(self, poll_seconds: float = 0.5) -> None:
        """Take the lock, waiting as long as its holder keeps it (Ctrl-C stops the wait)."""
        self._lock.acquire(timeout=-1, poll_interval=poll_seconds)
        self._taken()

    def _taken(self) -> None:
        holder = {"host": platform.node(), "pid": os.getpid(), "run": self.run, "since": time.time()}
        write_json_atomic(self.holder_path, holder)

    def holder(self) -> Holder | None:
        """Who holds the lock, as written down; None where nothing is (or it cannot be read)."""
        from cnmc_repro.store.folders import load_json

        data = load_json(self.holder_path)
        try:
            return Holder(str(data["host"]), int(data["pid"]), str(data["run"]), float(data["since"]))
        except (TypeError, KeyError, ValueError):
            return None

    def release(self) -> None:
        self.holder_path.unlink(missing_ok=True)
        self._lock.release()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._lock.is_locked
