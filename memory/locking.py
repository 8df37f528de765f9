"""One writer per embedded store: an OS file lock inside the store's directory.

Chroma's embedded mode (SQLite + HNSW files) is not safe with two writing processes: each
keeps its own index in memory and they overwrite each other's files. ``flock`` gives a clear
error instead, and the OS releases it when the holder dies, so a crash never leaves a stale
lock. Inside one process Chroma shares one client per path, so opens are reference-counted
and only other processes are refused.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from filelock import FileLock, Timeout

from agent.errors import MemoryLocked

LOCK_NAME = "evolvent-write.lock"

_held: dict[str, tuple[FileLock, int]] = {}
_guard = threading.Lock()


def _write_pid(fd: int) -> None:
    # Lets the refused process say who holds the store.
    os.write(fd, f"{os.getpid()}\n".encode())


def _holder(lock_path: Path) -> int | None:
    try:
        text = lock_path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def acquire_write_lock(path: Path) -> str:
    """Take the store's write lock (shared within this process); returns the key for release.

    Raises ``MemoryLocked`` at once, without waiting, when another process holds it.
    """
    key = os.path.realpath(path)
    with _guard:
        if key in _held:
            lock, n = _held[key]
            _held[key] = (lock, n + 1)
            return key
        lock_path = Path(key) / LOCK_NAME
        # thread_local=False: the store may be closed by another thread than the one that
        # opened it (a web server's worker, a runner's pool).
        lock = FileLock(lock_path, timeout=0, thread_local=False, on_acquired=_write_pid)
        try:
            lock.acquire()
        except Timeout:
            raise MemoryLocked(key, _holder(lock_path)) from None
        _held[key] = (lock, 1)
        return key


def release_write_lock(key: str) -> None:
    with _guard:
        if key not in _held:
            return
        lock, n = _held[key]
        if n > 1:
            _held[key] = (lock, n - 1)
            return
        del _held[key]
        lock.release(force=True)
