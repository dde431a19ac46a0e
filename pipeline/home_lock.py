"""One run at a time per lensflow home: an advisory lock held for the whole of a run.

A home holds one SQLite ML Metadata store per pipeline, the artifacts and (by default) the serving
folder; two runs writing them at once could interleave executions in the store and race for the
serving folder. ``lensflow run`` and ``lensflow compare`` therefore hold ``<home>/lensflow.lock``
(``fcntl.flock``, exclusive) from before they read the store until their summary is written. The
kernel drops the lock when the holding process ends, however it ends, so a killed run never
leaves a stale lock; the file only carries who holds it (pid, start time, command) for the
message the second run prints.

The lock is re-entrant within a process (``lensflow compare`` holds it once around its many
pipeline runs, each of which asks for it again), since two ``flock`` calls on separately opened
descriptors of one file conflict even inside one process.
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional

LOCK_NAME = "lensflow.lock"

_held: Dict[str, list] = {}     # lock path -> [open file, depth] for locks this process holds
_guard = threading.Lock()


class HomeBusy(RuntimeError):
    """Another process holds the home's lock (and the caller chose not to wait)."""

    def __init__(self, home: str, holder: Dict[str, object]):
        self.home, self.holder = home, holder
        super().__init__(f"another lensflow process is using the home {home}: "
                         f"{describe_holder(holder)}. Wait for it to finish, or pass --wait "
                         "to queue behind it (one run at a time per home: they share its "
                         "ML Metadata store and serving folder).")


def lock_path(home: os.PathLike) -> str:
    return str(Path(home) / LOCK_NAME)


def describe_holder(holder: Dict[str, object]) -> str:
    """``pid 123, started 2025-01-01T10:00:00+00:00, command 'lensflow run ...'``."""
    if not holder.get("pid"):
        return "holder unknown (it has only just taken the lock)"
    return (f"pid {holder['pid']}, started {holder.get('started', '?')}, "
            f"command {holder.get('command', '?')!r}")


def read_holder(home: os.PathLike) -> Dict[str, object]:
    """Who holds (or last held) the lock, from the lock file; {} when unreadable."""
    try:
        with open(lock_path(home), encoding="utf-8") as fh:
            return json.loads(fh.read() or "{}")
    except (OSError, ValueError):
        return {}


def _write_holder(fh) -> None:
    fh.seek(0)
    fh.truncate()
    fh.write(json.dumps({
        "pid": os.getpid(),
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]),
    }))
    fh.flush()


@contextmanager
def hold(home: os.PathLike, wait: bool = False,
         on_wait: Optional[Callable[[Dict[str, object]], None]] = None) -> Iterator[None]:
    """Hold the home's lock for the ``with`` block. Busy: raise ``HomeBusy`` naming the holder,
    or with ``wait`` call ``on_wait(holder)`` once and block until the lock is free."""
    os.makedirs(home, exist_ok=True)
    path = lock_path(home)
    with _guard:
        if path in _held:
            _held[path][1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[path][1] -= 1
        return
    fh = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = read_holder(home)
            if not wait:
                raise HomeBusy(str(home), holder) from None
            if on_wait is not None:
                on_wait(holder)
            fcntl.flock(fh, fcntl.LOCK_EX)
        _write_holder(fh)
        with _guard:
            _held[path] = [fh, 1]
        try:
            yield
        finally:
            with _guard:
                del _held[path]
            fh.seek(0)
            fh.truncate()
            fh.flush()
            fcntl.flock(fh, fcntl.LOCK_UN)
    finally:
        fh.close()
