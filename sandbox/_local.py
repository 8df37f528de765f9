"""The engine shared by the backends that start a host process (bwrap, subprocess).

One run: a fresh temp dir with ``work/`` (the command's files), a per-run cgroup where one can
be made, rlimits (see ``_limits``), stdout/stderr read with bounded memory, the wall clock
watched through a pidfd, and on timeout the whole process group and cgroup killed. Nothing is
left behind: the cgroup is emptied and removed, the dir deleted.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import tempfile
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from sandbox._cgroup import RunCgroup
from sandbox._limits import classify, rlimits, spawn_plan
from sandbox.base import (
    RunResult,
    Sandbox,
    SandboxLimits,
    exit_from_shell_code,
    remove_tree,
    signal_name,
    write_files,
)

_READ_CHUNK = 65536
_DRAIN_GRACE_S = 1.0


@dataclass
class Launch:
    """How a backend wants its command started on the host."""

    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    nproc: int | None = None
    """RLIMIT_NPROC; only meaningful when the command runs under a uid of its own."""
    close_after_start: list[int] = field(default_factory=list)
    signal_as_128_plus: bool = False
    """The launcher reports a signal death of the command as exit status 128+N."""
    after_exit: Callable[[], None] | None = None
    """Called once the launched process is reaped (also on errors), e.g. to wait for what it
    leaves dying asynchronously."""


@dataclass
class _Capture:
    limit: int
    data: bytearray = field(default_factory=bytearray)
    seen: int = 0

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.seen += len(chunk)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    @property
    def truncated(self) -> bool:
        return self.seen > self.limit


def _kill_tree(proc: subprocess.Popen[bytes], cgroup: RunCgroup | None) -> None:
    # Called before the leader is reaped, so its pid (= the group id) cannot be reused yet.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if cgroup is not None:
        cgroup.kill_all()


class LocalSandbox(Sandbox):
    """Base of host-process backends: subclasses only say how to start the command."""

    helper_processes: ClassVar[int] = 0
    """Processes the launcher itself keeps inside the run's cgroup (bwrap: 2)."""
    rusage_complete: ClassVar[bool] = True
    """The launched process reaps the command, so its rusage includes the command's CPU."""

    @abstractmethod
    def _launch(
        self,
        argv: list[str],
        root: Path,
        work: Path,
        env: dict[str, str],
        limits: SandboxLimits,
        owner: int | None,
    ) -> Launch:
        """Build the host command; ``work`` already holds the files (owned by ``owner``, the
        uid the command will run as, when the backend picked one); ``root`` is scratch."""

    def _work_owner(self) -> int | None:
        """uid (= gid) the command of this run will run as; None keeps the caller's."""
        return None

    def _execute(
        self, argv: list[str], files: dict[str, bytes], env: dict[str, str], limits: SandboxLimits
    ) -> RunResult:
        root = Path(tempfile.mkdtemp(prefix="evolvent-sbx-"))
        cgroup: RunCgroup | None = None
        try:
            work = root / "work"
            work.mkdir(mode=0o700)
            owner = self._work_owner()
            if owner is not None:
                os.chown(work, owner, owner)
            write_files(work, files, owner)
            launch = self._launch(argv, root, work, env, limits, owner)
            pids = (
                None
                if limits.max_processes is None
                else limits.max_processes + self.helper_processes
            )
            cgroup = RunCgroup.create(pids, limits.address_space_bytes)
            return self._supervise(launch, limits, cgroup)
        finally:
            if cgroup is not None:
                cgroup.destroy()
            remove_tree(root)

    def _supervise(
        self, launch: Launch, limits: SandboxLimits, cgroup: RunCgroup | None
    ) -> RunResult:
        start = time.monotonic()
        deadline = start + limits.timeout_s
        cmd, preexec = spawn_plan(launch.cmd, rlimits(limits, launch.nproc), cgroup)
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=launch.cwd,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=launch.pass_fds,
                preexec_fn=preexec,
            )
        except BaseException:
            if launch.after_exit is not None:
                launch.after_exit()
            raise
        finally:
            for fd in launch.close_after_start:
                os.close(fd)
        assert proc.stdout is not None and proc.stderr is not None
        out, err = _Capture(limits.max_output_bytes), _Capture(limits.max_output_bytes)
        streams = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
        pidfd = os.pidfd_open(proc.pid)
        sel = selectors.DefaultSelector()
        for fd in (*streams, pidfd):
            sel.register(fd, selectors.EVENT_READ)
        exited = timed_out = False
        try:
            while not exited or (streams and time.monotonic() < deadline):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = not exited
                    break
                for key, _ in sel.select(remaining):
                    fd = int(key.fd)
                    if fd == pidfd:
                        sel.unregister(pidfd)
                        exited = True
                        # The command is done; stragglers it left would hold the pipes open.
                        _kill_tree(proc, cgroup)
                        deadline = min(deadline, time.monotonic() + _DRAIN_GRACE_S)
                        continue
                    chunk = os.read(fd, _READ_CHUNK)
                    if chunk:
                        streams[fd].add(chunk)
                    else:
                        sel.unregister(fd)
                        del streams[fd]
            if not exited:
                _kill_tree(proc, cgroup)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = -1  # reaped here; keeps Popen from waiting on a reused pid
            if not exited:
                sel.unregister(pidfd)
                self._drain(sel, streams)
        finally:
            sel.close()
            os.close(pidfd)
            proc.stdout.close()
            proc.stderr.close()
            if launch.after_exit is not None:
                launch.after_exit()
        wall = time.monotonic() - start
        if os.WIFSIGNALED(status):
            exit_code, killed_by = -os.WTERMSIG(status), signal_name(os.WTERMSIG(status))
        else:
            exit_code, killed_by = os.WEXITSTATUS(status), None
            if launch.signal_as_128_plus:
                exit_code, killed_by = exit_from_shell_code(exit_code)
        if timed_out:
            exit_code, killed_by = -signal.SIGKILL, "SIGKILL"
        cpu = cgroup.cpu_seconds() if cgroup is not None else None
        if cpu is None and self.rusage_complete:
            cpu = usage.ru_utime + usage.ru_stime
        stderr = err.text()
        hit = classify(
            timed_out=timed_out,
            killed_by=killed_by,
            exit_code=exit_code,
            stderr_tail=stderr[-2048:],
            cpu_s=cpu,
            limits=limits,
            cgroup=cgroup,
            truncated=out.truncated or err.truncated,
        )
        return RunResult(
            exit_code=exit_code,
            stdout=out.text(),
            stderr=stderr,
            timed_out=timed_out,
            wall_s=round(wall, 6),
            cpu_s=None if cpu is None else round(cpu, 6),
            max_rss_kb=cgroup.peak_memory_kb() if cgroup is not None else None,
            killed_by=killed_by,
            limit_hit=hit,
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            backend=self.name,
        )

    @staticmethod
    def _drain(sel: selectors.BaseSelector, streams: dict[int, _Capture]) -> None:
        """Read what is still buffered in the pipes after the tree is dead."""
        end = time.monotonic() + _DRAIN_GRACE_S
        while streams and time.monotonic() < end:
            ready = sel.select(max(0.0, end - time.monotonic()))
            if not ready:
                break
            for key, _ in ready:
                fd = int(key.fd)
                chunk = os.read(fd, _READ_CHUNK)
                if chunk:
                    streams[fd].add(chunk)
                else:
                    sel.unregister(fd)
                    del streams[fd]
