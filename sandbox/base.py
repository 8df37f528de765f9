"""The sandbox interface: limits, the typed result of a run, and the abstract backend.

A backend implements one primitive, ``_execute``; argument checks, per-run limit overrides and
the encoding of ``files`` are done once here. Sandbox outcomes (non-zero exit, crash, timeout,
a limit hit) come back as a ``RunResult``; only a backend that cannot work at all raises.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import stat
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent.errors import EvolventError

LimitHit = Literal["timeout", "cpu", "memory", "processes", "file_size", "output"]

MiB = 1024 * 1024

# PATH inside every backend; the host's PATH may point at user-writable or secret locations.
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
BASE_ENV = {"PATH": SANDBOX_PATH, "LANG": "C.UTF-8", "USER": "sandbox", "LOGNAME": "sandbox"}

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SandboxError(EvolventError):
    """The sandbox machinery itself failed (not the command it ran)."""


class SandboxUnavailable(SandboxError):
    """A backend cannot run on this machine; the message says why in one line."""


class InsecureSandboxWarning(UserWarning):
    """Emitted once when a backend without a security boundary is used."""


class SandboxLimits(BaseModel):
    """Resource limits of one sandboxed run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(default=10.0, gt=0)
    """Wall-clock limit; the whole process tree is killed when it passes."""
    cpu_s: int | None = Field(default=10, ge=1)
    """CPU seconds per process (RLIMIT_CPU): SIGXCPU at the limit, SIGKILL a second later."""
    address_space_bytes: int | None = Field(default=2048 * MiB, ge=16 * MiB)
    """Virtual memory per process (RLIMIT_AS); also the total memory of the sandbox where a
    memory cgroup (bwrap, subprocess) or ``mem_limit`` (docker) is available."""
    max_processes: int | None = Field(default=64, ge=1)
    """Processes and threads of the command tree at the same time."""
    max_file_bytes: int | None = Field(default=64 * MiB, ge=0)
    """Largest file a process may write (RLIMIT_FSIZE)."""
    max_output_bytes: int = Field(default=1 * MiB, ge=0)
    """Bytes kept of stdout and of stderr each; the rest is read and dropped."""
    tmp_bytes: int = Field(default=64 * MiB, ge=MiB)
    """Size of the private ``/tmp`` (bwrap, docker)."""


class RunResult(BaseModel):
    """What happened to one command. Signal deaths are normalized: ``exit_code`` is ``-N``."""

    model_config = ConfigDict(frozen=True)

    exit_code: int
    """Exit status, or ``-N`` when killed by signal N (bwrap and docker report 128+N; a command
    that exits with 128+N on its own is therefore reported as killed there)."""
    stdout: str
    stderr: str
    timed_out: bool = False
    """The wall-clock limit passed and the process tree was killed."""
    wall_s: float
    cpu_s: float | None = None
    """CPU seconds of the whole process tree (from the run's cgroup, else rusage; None where
    the backend cannot tell)."""
    max_rss_kb: int | None = None
    """Peak memory of the run in KiB (memory cgroup peak; None without one: rusage would count
    the caller's own memory, inherited at fork)."""
    killed_by: str | None = None
    """Signal name (``SIGKILL``, ``SIGSEGV``, ...) when a signal ended the command."""
    limit_hit: LimitHit | None = None
    """The most specific limit that stopped or constrained the command, where detectable."""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    backend: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def killed_reason(self) -> str | None:
        """One line on why the command did not finish on its own, or None."""
        if self.limit_hit is not None and self.limit_hit != "output":
            return f"{self.limit_hit} limit" + (f" ({self.killed_by})" if self.killed_by else "")
        if self.killed_by is not None:
            return f"killed by {self.killed_by}"
        return None


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIG{signum}"


def exit_from_shell_code(code: int) -> tuple[int, str | None]:
    """Map a 128+N status (how bwrap and docker pass on a signal death) to ``(-N, name)``."""
    if 128 < code < 128 + signal.NSIG:
        return -(code - 128), signal_name(code - 128)
    return code, None


def _check_relpath(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if (
        not name
        or "\0" in name
        or path.is_absolute()
        or ".." in path.parts
        or path == PurePosixPath()
    ):
        raise ValueError(f"file name must be a relative path inside the work dir: {name!r}")
    return path


def write_files(work: Path, files: Mapping[str, bytes], owner: int | None = None) -> None:
    """Write ``files`` under ``work``; ``owner`` (uid = gid) gets every created entry."""
    for name, data in files.items():
        target = work / _check_relpath(name)
        created = [p for p in reversed(target.parents) if p.is_relative_to(work) and p != work]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        if owner is not None:
            for p in [*created, target]:
                os.chown(p, owner, owner)


def remove_tree(path: Path) -> None:
    """Delete a work dir even when the command made parts of it unreadable."""

    def fix(func: object, p: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)


class Sandbox(ABC):
    """Runs a command in a fresh private work dir (its cwd and ``$HOME``), then deletes it."""

    name: ClassVar[str]

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        self.limits = limits or SandboxLimits()

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        files: Mapping[str, str | bytes] | None = None,
        env: Mapping[str, str] | None = None,
        limits: SandboxLimits | None = None,
    ) -> RunResult:
        """Run ``argv``; ``files`` are written into the work dir first; ``env`` is added to a
        scrubbed environment (nothing of the caller's environment is passed on). ``limits``
        replaces the sandbox's limits for this run; ``timeout`` overrides its wall clock."""
        if isinstance(argv, str) or not argv or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a non-empty list of strings")
        if any("\0" in a for a in argv):
            raise ValueError("argv must not contain NUL characters")
        extra = dict(env or {})
        for key, value in extra.items():
            if not _ENV_NAME.match(key) or "\0" in value:
                raise ValueError(f"invalid environment variable {key!r}")
        blobs = {
            n: d.encode() if isinstance(d, str) else bytes(d) for n, d in (files or {}).items()
        }
        for n in blobs:
            _check_relpath(n)
        limits = limits or self.limits
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float):
                raise TypeError(f"timeout must be a number of seconds, not {timeout!r}")
            if not (math.isfinite(timeout) and timeout > 0):
                raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
            limits = limits.model_copy(update={"timeout_s": float(timeout)})
        return self._execute(list(argv), blobs, extra, limits)

    @abstractmethod
    def _execute(
        self, argv: list[str], files: dict[str, bytes], env: dict[str, str], limits: SandboxLimits
    ) -> RunResult:
        """Run one command under ``limits``; never raise for what the command does."""

    def info(self) -> dict[str, str]:
        """How each kind of isolation is achieved by this backend here (for reports)."""
        return {}

    def close(self) -> None:
        """Release clients or connections; the default has none."""
        return None
