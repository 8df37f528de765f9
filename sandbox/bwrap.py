"""The bubblewrap backend: own mount, pid, network, ipc and uts namespaces per run.

Only what a command needs is bound, read-only: ``/usr`` and the lib/bin links, a handful of
``/etc`` files, and the running Python installation (so ``sys.executable`` works inside), at
their host paths. ``--ro-bind / /`` would expose every host file readable by the uid.

As root, bwrap cannot give the command a user namespace of its own (it would map to host uid
0, which may still write root-owned files such as ``/proc/sys``), so the command is dropped
with ``setpriv`` to an unused uid chosen per run: no capabilities, nothing on the host owned
by it, and RLIMIT_NPROC counts exactly this run's processes. A seccomp filter refuses new user
namespaces. Without root, bwrap's own user namespace does that job (``--disable-userns``), and
RLIMIT_NPROC is set inside it by ``prlimit``: the kernel counts a user namespace's tasks on
their own, so the limit binds this run only, however many processes the user has elsewhere.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import shutil
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from sandbox import _cgroup
from sandbox._local import Launch, LocalSandbox
from sandbox._seccomp import userns_filter
from sandbox.base import BASE_ENV, SANDBOX_PATH, SandboxLimits, SandboxUnavailable

SANDBOX_HOME = "/sandbox"
"""Work dir inside the sandbox. Not /work: checkouts (and their venvs, bound at their own path)
live under /work on the project's machines."""

_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Loader cache, Debian alternatives symlinks, user/group names, time zone: no secrets here
# (no shadow, ssl keys, resolver or host config).
_ETC_ENTRIES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "alternatives",
    "localtime",
    "passwd",
    "group",
    "nsswitch.conf",
)
_UID_BASE = 0x4000_0000  # far above system, user and rootless-container subuid ranges

_probe_lock = threading.Lock()
_probe_answers: dict[tuple[str, ...], str | None] = {}  # static args -> None (works) or why not


def _covered(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


_TMPFS_TARGETS = ("/tmp", "/dev/shm")


def _bind_args(binds: Sequence[tuple[str, str]], system: Sequence[str]) -> list[str]:
    """Read-only binds, shallowest first, with their missing parent directories."""
    args: list[str] = []
    # Parents bwrap would create are root-only (0700) when it runs as root: the dropped
    # uid could not reach the binds below them.
    parents = {str(a) for _, dest in binds for a in Path(dest).parents if str(a) != "/"}
    skip = {*system, *_TMPFS_TARGETS}
    for d in sorted(parents - skip, key=lambda p: (p.count("/"), p)):
        args += ["--perms", "0755", "--dir", d]
    for src, dest in sorted(binds, key=lambda b: (b[1].count("/"), b[1])):
        args += ["--ro-bind", src, dest]
    return args


def _python_binds() -> list[tuple[str, str]]:
    """(source, dest) pairs that make the running interpreter and its venv usable inside."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    pairs: dict[str, str] = {}
    for p in prefixes:
        real = os.path.realpath(p)
        pairs.setdefault(real, real)
        pairs.setdefault(os.path.abspath(p), real)
    system = [d for d in _SYSTEM_DIRS if os.path.exists(d)]
    dests = [d for d in pairs if not _covered(os.path.realpath(d), system)]
    # A prefix nested in another one is already visible through the outer bind.
    keep = [d for d in dests if not any(o != d and _covered(d, [o]) for o in dests)]
    return [(pairs[d], d) for d in sorted(keep)]


def _await_namespace_end(info_fd: int, wait_s: float = 2.0) -> None:
    """Wait until the sandbox's pid 1 has exited; the kernel kills and reaps every other
    process of a pid namespace before its pid 1 counts as exited."""
    os.set_blocking(info_fd, False)
    try:
        data = os.read(info_fd, 65536)
    except BlockingIOError:
        data = b""
    finally:
        os.close(info_fd)
    found = re.search(rb'"child-pid":\s*(\d+)', data)
    if found is None:
        return
    try:
        pidfd = os.pidfd_open(int(found[1]))
    except ProcessLookupError:
        return
    try:
        select.select([pidfd], [], [], wait_s)
    finally:
        os.close(pidfd)


class BwrapSandbox(LocalSandbox):
    """bubblewrap: no network, read-only minimal root, private /tmp and work dir."""

    name: ClassVar[str] = "bwrap"
    helper_processes: ClassVar[int] = 2  # bwrap's monitor and its pid-1 reaper
    rusage_complete: ClassVar[bool] = False  # the monitor exits without reaping pid 1

    def __init__(
        self, limits: SandboxLimits | None = None, *, ro_binds: Sequence[str] = ()
    ) -> None:
        super().__init__(limits)
        if not sys.platform.startswith("linux"):
            raise SandboxUnavailable("bubblewrap needs Linux")
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable("bwrap not found on PATH (install the bubblewrap package)")
        self._privileged = os.geteuid() == 0
        self._setpriv = shutil.which("setpriv", path=SANDBOX_PATH) if self._privileged else None
        self._prlimit = shutil.which("prlimit", path=SANDBOX_PATH)
        if self._privileged and self._setpriv is None:
            raise SandboxUnavailable("bwrap as root needs setpriv (util-linux) to drop privileges")
        self._static = self._static_args(bwrap, list(ro_binds))
        reason = self._probe()
        if reason is not None:
            raise SandboxUnavailable(reason)

    def _static_args(self, bwrap: str, ro_binds: list[str]) -> list[str]:
        args = [bwrap, "--die-with-parent", "--new-session"]
        args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--hostname", "sandbox"]
        if self._privileged:  # only what setpriv needs to switch uid; it drops them again
            for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP"):
                args += ["--cap-add", cap]
        else:
            args += ["--unshare-user", "--disable-userns"]
        binds = [(f"/etc/{e}", f"/etc/{e}") for e in _ETC_ENTRIES if os.path.exists(f"/etc/{e}")]
        binds += _python_binds()
        binds += [(os.path.realpath(p), os.path.abspath(p)) for p in ro_binds]
        system = [d for d in _SYSTEM_DIRS if os.path.lexists(d)]
        # A venv or checkout under /tmp or /dev/shm would be hidden by the private tmpfs
        # mounted there at launch: those binds are made after it (see _launch).
        early = [b for b in binds if not _covered(b[1], _TMPFS_TARGETS)]
        self._late_binds = _bind_args([b for b in binds if b not in early], system)
        for d in system:
            if os.path.islink(d):
                args += ["--symlink", os.readlink(d), d]
            else:
                args += ["--ro-bind", d, d]
        args += _bind_args(early, system)
        return [*args, "--dev", "/dev", "--proc", "/proc"]

    def _probe(self) -> str | None:
        """Run ``true`` once per process and configuration; later instances reuse the answer."""
        key = tuple(self._static)
        with _probe_lock:
            if key not in _probe_answers:
                res = self._execute(["true"], {}, {}, SandboxLimits(timeout_s=15))
                last = (res.stderr.strip().splitlines() or [f"exit status {res.exit_code}"])[-1]
                _probe_answers[key] = None if res.ok else f"bwrap does not work here: {last}"
            return _probe_answers[key]

    def _work_owner(self) -> int | None:
        return _UID_BASE + secrets.randbelow(1 << 24) if self._privileged else None

    def _launch(
        self,
        argv: list[str],
        root: Path,
        work: Path,
        env: dict[str, str],
        limits: SandboxLimits,
        owner: int | None,
    ) -> Launch:
        args = list(self._static)
        for target in _TMPFS_TARGETS:
            args += ["--perms", "1777", "--size", str(limits.tmp_bytes), "--tmpfs", target]
        args += self._late_binds
        args += ["--bind", str(work), SANDBOX_HOME, "--chdir", SANDBOX_HOME, "--remount-ro", "/"]
        args.append("--clearenv")
        for key, value in {**BASE_ENV, "HOME": SANDBOX_HOME, "TMPDIR": "/tmp", **env}.items():
            args += ["--setenv", key, value]
        launch = Launch(cmd=args, cwd=root, env={"PATH": SANDBOX_PATH}, signal_as_128_plus=True)
        program = userns_filter()
        if program is not None:
            r, w = os.pipe()
            os.write(w, program)
            os.close(w)
            args += ["--seccomp", str(r)]
            launch.pass_fds, launch.close_after_start = (r,), [r]
        # bwrap's monitor exits before its pid 1 has torn the namespace down; learn pid 1's
        # host pid so the run ends only when every sandboxed process is gone.
        info_r, info_w = os.pipe()
        args += ["--info-fd", str(info_w)]
        launch.pass_fds += (info_w,)
        launch.close_after_start.append(info_w)
        launch.after_exit = lambda: _await_namespace_end(info_r)
        args.append("--")
        if owner is not None and self._setpriv is not None:
            args += [self._setpriv, f"--reuid={owner}", f"--regid={owner}", "--clear-groups"]
            args += ["--inh-caps=-all", "--bounding-set=-all", "--"]
            # A backstop one above the cgroup's share, so the cgroup (which reports the hit)
            # trips first where there is one.
            launch.nproc = None if limits.max_processes is None else limits.max_processes + 1
        elif limits.max_processes is not None and self._prlimit is not None:
            # Set inside the user namespace (pid 1, bwrap's reaper, counts there too).
            n = limits.max_processes + 1
            args += [self._prlimit, f"--nproc={n}:{n}", "--"]
        args += argv
        return launch

    def info(self) -> dict[str, str]:
        cg = _cgroup.support()
        if self._privileged:
            user = "own uid per run via setpriv, no capabilities, seccomp blocks user namespaces"
            procs = "pid namespace + RLIMIT_NPROC on the run's uid"
        else:
            user = "user namespace, no capabilities, nested user namespaces disabled"
            procs = "pid namespace + RLIMIT_NPROC inside the user namespace"
        return {
            "filesystem": "read-only /usr, lib links, minimal /etc, the Python install; "
            f"private /tmp; work dir at {SANDBOX_HOME}",
            "network": "own network namespace (loopback only, nothing listening)",
            "environment": "cleared (--clearenv)",
            "user": user,
            "processes": procs + (f" + pids cgroup: {cg}" if "pids" in cg else ""),
            "memory": "RLIMIT_AS" + (" + memory cgroup" if "memory" in cg else ""),
            "cleanup": "--die-with-parent, pid namespace teardown, process group + cgroup kill",
        }
