"""The last-resort backend: a plain host process with rlimits, a scrubbed environment and a
private work dir. It is NO security boundary: the command sees the host's files and network
and runs with the caller's uid (root included). It exists so the agent still works where
neither Docker nor bubblewrap can run; ``auto`` picks it last and says so.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from typing import ClassVar

from sandbox import _cgroup
from sandbox._local import Launch, LocalSandbox
from sandbox.base import BASE_ENV, InsecureSandboxWarning, SandboxLimits

log = logging.getLogger(__name__)

_warned = threading.Event()
INSECURE_NOTICE = (
    "the subprocess sandbox is NO security boundary: commands can read host files, use the "
    "network and act with this process's uid; install bubblewrap or Docker for isolation"
)


class SubprocessSandbox(LocalSandbox):
    """rlimits + process-group kill + clean env + private work dir; no isolation."""

    name: ClassVar[str] = "subprocess"

    def __init__(self, limits: SandboxLimits | None = None) -> None:
        super().__init__(limits)
        if not _warned.is_set():
            _warned.set()
            log.warning(INSECURE_NOTICE)
            warnings.warn(INSECURE_NOTICE, InsecureSandboxWarning, stacklevel=2)

    def _launch(
        self,
        argv: list[str],
        root: Path,
        work: Path,
        env: dict[str, str],
        limits: SandboxLimits,
        owner: int | None,
    ) -> Launch:
        tmp = root / "tmp"
        tmp.mkdir(mode=0o700)
        full_env = {**BASE_ENV, "HOME": str(work), "TMPDIR": str(tmp), **env}
        return Launch(cmd=argv, cwd=work, env=full_env)

    def info(self) -> dict[str, str]:
        cg = _cgroup.support()
        return {
            "filesystem": "none (host filesystem, caller's uid)",
            "network": "none (host network)",
            "environment": "scrubbed",
            "processes": f"pids cgroup: {cg}" if "pids" in cg else "none (no writable cgroup)",
            "memory": "RLIMIT_AS" + (" + memory cgroup" if "memory" in cg else ""),
            "cleanup": "process group kill" + (" + cgroup kill" if "pids" in cg else ""),
        }
