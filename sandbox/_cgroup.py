"""A throwaway cgroup per run: a pids limit (RLIMIT_NPROC does not bind root), a memory limit
for the whole tree, CPU and peak-memory accounting (rusage cannot give them: bwrap's monitor
does not reap the command, and ``ru_maxrss`` counts the caller's own size inherited at fork),
and a reliable way to find and kill every process of the run.

The groups are created below the cgroup this process is already in, so accounting of whoever
runs us stays intact. Where nothing is writable (no root, no delegation) ``create`` returns
None and the backends fall back to what rlimits and namespaces give.

A group is named after the process that made it (``evolvent-sbx-<pid>-<random>``). A process
that is SIGKILLed cannot remove its groups (the sandboxed command dies with it, through
``--die-with-parent`` or the kernel's pid-namespace teardown, but the empty directories stay),
so every ``create`` first removes empty groups whose maker is gone and which are older than
``STALE_AFTER_S`` (a maker in another pid namespace looks gone from here; the age keeps a group
that is being set up right now safe from such a sweep).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")
_CONTROLLERS = ("pids", "memory", "cpuacct")
PREFIX = "evolvent-sbx-"
STALE_AFTER_S = 30.0
_PID_MAX = 4_194_304  # the kernel's upper bound for pid_max


@dataclass(frozen=True)
class _Parent:
    controller: str  # "pids", "memory" or "cpuacct"
    path: Path
    v2: bool


@functools.cache
def _parents() -> tuple[_Parent, ...]:
    """Writable parent cgroups for the pids and memory controllers (cached per process)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return ()
    found: dict[str, _Parent] = {}
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        rel = rel.lstrip("/")
        if controllers == "":  # cgroup v2; controllers must already be delegated to children
            base = (
                _ROOT / rel if (_ROOT / "cgroup.controllers").exists() else _ROOT / "unified" / rel
            )
            try:
                enabled = (base / "cgroup.subtree_control").read_text().split()
            except OSError:
                continue
            # cpu.stat exists in every v2 group, so CPU accounting needs no delegation.
            for c in _CONTROLLERS:
                if (c in enabled or c == "cpuacct") and os.access(base, os.W_OK):
                    found.setdefault(c, _Parent(c, base, v2=True))
        for c in controllers.split(","):
            base = _ROOT / c / rel
            if c in _CONTROLLERS and os.access(base, os.W_OK):
                found[c] = _Parent(c, base, v2=False)
    return tuple(found.values())


def support() -> str:
    """One line naming the controllers a run can use here, for reports."""
    parts = [f"{p.controller} (cgroup {'v2' if p.v2 else 'v1'})" for p in _parents()]
    return ", ".join(parts) or "none writable"


def _maker_alive(name: str) -> bool:
    """Whether the process named in a group's name exists (True where the name has no pid)."""
    head, sep, _ = name.removeprefix(PREFIX).partition("-")
    if not sep or not head.isdigit() or int(head) > _PID_MAX:
        return True  # an older name without the maker's pid: leave it alone
    try:
        os.kill(int(head), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(min_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove empty run groups left by processes that died before cleaning up; the removed."""
    removed: list[Path] = []
    for group in list(_pending):
        if group.destroy(wait_s=0.0):
            removed.extend(dict.fromkeys(group.dirs.values()))
    now = time.time()
    # On cgroup v2 every controller has the same parent: look at each directory once.
    for parent in dict.fromkeys(p.path for p in _parents()):
        with contextlib.suppress(OSError):
            for d in parent.glob(f"{PREFIX}*"):
                try:
                    if _maker_alive(d.name) or now - d.stat().st_mtime < min_age_s:
                        continue
                    d.rmdir()  # fails (EBUSY) while any process is still in the group
                except OSError:
                    continue
                removed.append(d)
    return removed


@dataclass(eq=False)
class RunCgroup:
    """The cgroups (one per controller on v1, shared on v2) of one sandboxed run."""

    dirs: dict[str, Path]

    @classmethod
    def create(cls, max_pids: int | None, memory_bytes: int | None) -> RunCgroup | None:
        """A group with the given limits (None: accounting only), or None where impossible."""
        limits = {"pids": max_pids, "memory": memory_bytes, "cpuacct": None}
        sweep_stale()
        name = f"{PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}"
        group = cls(dirs={})
        try:
            for parent in _parents():
                d = parent.path / name
                if d not in group.dirs.values():
                    d.mkdir()
                group.dirs[parent.controller] = d
                limit = limits[parent.controller]
                if limit is not None:
                    group._set_limit(parent.controller, d, limit, parent.v2)
        except OSError:
            group.destroy()
            return None
        return group if group.dirs else None

    @staticmethod
    def _set_limit(controller: str, d: Path, limit: int, v2: bool) -> None:
        if controller == "pids":
            (d / "pids.max").write_text(str(limit))
        elif v2:
            (d / "memory.max").write_text(str(limit))
            with contextlib.suppress(OSError):
                (d / "memory.swap.max").write_text("0")
        else:
            (d / "memory.limit_in_bytes").write_text(str(limit))
            with contextlib.suppress(OSError):  # only with swap accounting; keeps swap out too
                (d / "memory.memsw.limit_in_bytes").write_text(str(limit))

    def procs_files(self) -> list[Path]:
        """Writing "0" to each of these moves the writing process into the run's groups."""
        return [d / "cgroup.procs" for d in dict.fromkeys(self.dirs.values())]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for d in self.dirs.values():
            with contextlib.suppress(OSError, ValueError):
                found.update(int(x) for x in (d / "cgroup.procs").read_text().split())
        return found

    def kill_all(self) -> None:
        # Every pid listed here belongs to this run; a fork racing the loop is caught by the
        # next call (destroy repeats until the group is empty).
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def _counter(self, controller: str, filename: str, key: str) -> int:
        d = self.dirs.get(controller)
        if d is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in (d / filename).read_text().splitlines():
                k, _, v = line.partition(" ")
                if k == key:
                    return int(v)
        return 0

    def pids_limit_hit(self) -> bool:
        return self._counter("pids", "pids.events", "max") > 0

    def memory_limit_hit(self) -> bool:
        d = self.dirs.get("memory")
        v2 = d is not None and (d / "memory.events").exists()
        fname = "memory.events" if v2 else "memory.oom_control"
        return self._counter("memory", fname, "oom_kill") > 0

    def cpu_seconds(self) -> float | None:
        d = self.dirs.get("cpuacct")
        if d is None:
            return None
        with contextlib.suppress(OSError, ValueError):
            if (d / "cpuacct.usage").exists():
                return int((d / "cpuacct.usage").read_text()) / 1e9
            return self._counter("cpuacct", "cpu.stat", "usage_usec") / 1e6
        return None

    def peak_memory_kb(self) -> int | None:
        d = self.dirs.get("memory")
        if d is None:
            return None
        for fname in ("memory.max_usage_in_bytes", "memory.peak"):
            with contextlib.suppress(OSError, ValueError):
                return int((d / fname).read_text()) // 1024
        return None

    def destroy(self, wait_s: float = 10.0) -> bool:
        """Kill what is left, remove the groups; False when something could not be removed.

        A group that is still busy after ``wait_s`` (hundreds of dying processes on a loaded
        machine) is retried by every later ``create`` and once more at exit."""
        deadline = time.monotonic() + wait_s
        while True:
            if self.pids():
                self.kill_all()
            elif self._remove():
                _pending.discard(self)
                return True
            if time.monotonic() >= deadline:
                _pending.add(self)
                return False
            time.sleep(0.005)

    def _remove(self) -> bool:
        clean = True
        for d in dict.fromkeys(self.dirs.values()):
            try:
                d.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                clean = False
        return clean


_pending: set[RunCgroup] = set()
"""Groups of this process whose removal failed; retried by ``sweep_stale`` and at exit."""


@atexit.register
def _retry_pending() -> None:
    for group in list(_pending):
        group.destroy(wait_s=1.0)
