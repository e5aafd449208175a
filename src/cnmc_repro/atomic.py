"""Atomic file writes: a reader sees the old file or the whole new one, never half of one.

A file is written into a temporary file beside it, then renamed over it. The temporary file's name says who
writes it (``.<name>.<host>-<pid>-<random>.tmp``), so that one a killed process left behind (``kill -9``, a
lost node) is known as stale once that process is gone, and :func:`remove_stale_temps` removes it.
"""

import json
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HOST = re.sub(r"[^A-Za-z0-9]", "", platform.node())[:40] or "host"
TEMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-[^.]+\.tmp$")
OTHER_HOST_STALE_SECONDS = 24 * 3600  # another machine's process cannot be asked whether it lives


def write_atomic(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write ``path`` through ``write(fileobj)`` into a temporary file beside it, then rename it over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{HOST}-{os.getpid()}-", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files; give the usual permissions
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        cause = _os_error(e)
        if cause is not None:  # a full disk, say, as the error of the file being written (torch wraps it)
            raise OSError(cause.errno, cause.strerror, str(path)) from e
        raise


def _os_error(e: BaseException | None) -> OSError | None:
    """The error of the file system behind ``e`` (itself, or what it was raised from), if any."""
    while e is not None:
        if isinstance(e, OSError) and e.errno is not None:
            return e
        e = e.__cause__ or e.__context__
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda f: f.write(text), mode="w")


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # somebody else's
    return True


def is_stale_temp(path: Path) -> bool:
    """A temporary file of :func:`write_atomic` whose writer is gone (on this machine: its process has ended;
    on another: it is a day old)."""
    m = TEMP.match(path.name)
    if not m:
        return False
    if m["host"] == HOST:
        return not alive(int(m["pid"]))
    try:
        return time.time() - path.stat().st_mtime > OTHER_HOST_STALE_SECONDS
    except FileNotFoundError:
        return False


def remove_stale_temps(folder: Path, recursive: bool = True) -> int:
    """Remove the temporary files that killed writers left under ``folder``; returns how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"):
        if is_stale_temp(path):
            path.unlink(missing_ok=True)
            removed += 1
    return removed
