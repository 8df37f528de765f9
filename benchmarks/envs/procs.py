"""Finding and stopping the browser processes an env started (Linux ``/proc``).

Browsers outlive a polite close now and then (a renderer or utility process lingers after
its browser exits), so the envs remember the session or process group their browsers run
in and stop whatever is left of it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple


class ProcInfo(NamedTuple):
    pid: int
    ppid: int
    pgid: int
    sid: int
    command: str


def processes() -> list[ProcInfo]:
    """Every live process (zombies aside) this user can see."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if fields[0] != "Z":
            found.append(
                ProcInfo(
                    int(entry),
                    int(fields[1]),
                    int(fields[2]),
                    int(fields[3]),
                    command.decode(errors="replace"),
                )
            )
    return found


def session_pids(sid: int) -> list[int]:
    """Live processes of the session ``sid``."""
    return [p.pid for p in processes() if p.sid == sid]


def group_pids(pgid: int) -> list[int]:
    """Live processes of the process group ``pgid``."""
    return [p.pid for p in processes() if p.pgid == pgid]


def descendants(root: int | None = None) -> list[ProcInfo]:
    """Live processes below ``root`` (this process by default)."""
    every = processes()
    ours = {os.getpid() if root is None else root}
    grown = True
    while grown:
        more = {p.pid for p in every if p.ppid in ours} - ours
        grown = bool(more)
        ours |= more
    return [p for p in every if p.pid in ours and p.pid != root and p.pid != os.getpid()]


def is_browser(command: str) -> bool:
    """Whether a command line runs Chromium, Chrome or ChromeDriver (not, say, Chroma)."""
    program = os.path.basename(command.split(" ", 1)[0])
    return ("chrom" in program or "headless_shell" in program) and "chroma" not in program


def browser_groups() -> set[int]:
    """Process groups led by a Chromium process below this process (Playwright starts each
    browser as the leader of a group of its own)."""
    return {p.pgid for p in descendants() if p.pid == p.pgid and is_browser(p.command)}


def stop(pids: Callable[[], list[int]], grace_s: float = 2.0) -> None:
    """SIGTERM, then SIGKILL, the processes ``pids()`` lists until it lists none."""
    left: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + grace_s
        while (left := pids()) and time.monotonic() < deadline:
            for pid in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
            time.sleep(0.05)
        if not left:
            return
