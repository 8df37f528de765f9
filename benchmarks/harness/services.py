"""Servers a benchmark starts for itself and always stops: a local Chroma server.

A server runs in its own process group (``start_new_session``), so stopping it stops
whatever it spawned too; the context manager stops it on any exit, Ctrl-C included.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import EvolventError


class ServiceError(EvolventError):
    """A server the benchmark needs could not be started."""


_PR_SET_PDEATHSIG = 1
# Loaded here, not in the forked child: a preexec_fn must not import or take locks.
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """``preexec_fn`` for a server subprocess: on Linux it gets SIGTERM when the process
    that started it dies, even by SIGKILL (no orphan server outlives a killed benchmark)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc``, SIGKILL it after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextmanager
def chroma_server(data_dir: Path, timeout_s: float = 60.0) -> Iterator[str]:
    """A Chroma server on a free loopback port storing into ``data_dir``; yields its URL.

    The data stays in ``data_dir``, so a later run on the same directory (a resumed
    benchmark) finds what the earlier one learned.
    """
    cli = Path(sys.executable).parent / "chroma"
    if not cli.exists():
        raise ServiceError(f"the `chroma` CLI is missing ({cli}); run `bash scripts/setup.sh`")
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = data_dir / "server.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    cmd = [str(cli), "run", "--path", str(data_dir / "db"), "--host", "127.0.0.1"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*cmd, "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not _healthy(f"{url}/api/v2/heartbeat"):
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-300:].strip().replace("\n", " | ")
                raise ServiceError(f"the Chroma server exited ({proc.returncode}): {tail}")
            if time.monotonic() > deadline:
                raise ServiceError(f"the Chroma server was not healthy after {timeout_s:g} s")
            time.sleep(0.2)
        yield url
    finally:
        stop_group(proc)
