"""Security probes run against a backend: small Python snippets that try to get out.

``run_selfcheck(sb)`` opens a loopback listener, sets a secret environment variable and
writes a secret file outside the sandbox, runs every probe, and reports per probe whether the
backend contained it. A probe that leaves processes behind counts as not contained (they are
killed). Used by the security tests and by ``benchmarks/sandbox_bench.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from pydantic import BaseModel

from sandbox.base import RunResult, Sandbox

SECRET_ENV = "EVOLVENT_SANDBOX_PROBE_SECRET"


class ProbeOutcome(BaseModel):
    name: str
    contained: bool
    detail: str
    result: RunResult | None = None


class SelfCheckReport(BaseModel):
    backend: str
    outcomes: list[ProbeOutcome]

    @property
    def all_contained(self) -> bool:
        return all(o.contained for o in self.outcomes)

    def contained(self) -> dict[str, bool]:
        return {o.name: o.contained for o in self.outcomes}

    def format(self) -> str:
        rows = [f"{self.backend}:"]
        for o in self.outcomes:
            rows.append(
                f"  {'contained' if o.contained else 'NOT CONTAINED':13}  {o.name:17} {o.detail}"
            )
        return "\n".join(rows)


@dataclass
class _Ctx:
    port: int
    token: str
    secret_file: Path
    write_target: Path
    limits: dict[str, Any] = field(default_factory=dict)


Judge = Callable[[RunResult, _Ctx], bool]


@dataclass(frozen=True)
class _Probe:
    name: str
    code: str
    judge: Judge
    limits: dict[str, Any] = field(default_factory=dict)


def _absent(text: str) -> Judge:
    return lambda r, c: Template(text).substitute(token=c.token) not in r.stdout


_TRY = "try:\n    {}\nexcept OSError as e:\n    print('blocked:', e)\n"

PROBES: tuple[_Probe, ...] = (
    _Probe(
        "network_loopback",
        _TRY.format(
            'socket.create_connection(("127.0.0.1", $port), timeout=3); print("CONNECTED")'
        ),
        _absent("CONNECTED"),
    ),
    _Probe("env_secret", f'print(os.environ.get("{SECRET_ENV}", "absent"))', _absent("$token")),
    _Probe("host_file_read", _TRY.format('print(open("$secret_file").read())'), _absent("$token")),
    _Probe(
        "host_shadow", _TRY.format('open("/etc/shadow").read(); print("READ")'), _absent("READ")
    ),
    _Probe(
        "host_file_write",
        _TRY.format('open("$write_target", "w").write("x"); print("WROTE")'),
        lambda r, c: not c.write_target.exists(),
    ),
    _Probe(
        "host_processes",
        _TRY.format('os.kill($host_pid, 0); print("SIGNALLED")'),
        _absent("SIGNALLED"),
    ),
    _Probe(
        "proc_sys_write",
        _TRY.format('open("/proc/sys/vm/drop_caches", "a").close(); print("OPENED")'),
        _absent("OPENED"),
    ),
    _Probe(
        "capabilities",
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('CapEff')])",
        lambda r, c: "'0000000000000000'" in r.stdout,
    ),
    _Probe(
        "fork_bomb",
        "n = 0\ntry:\n    for _ in range(400):\n        if os.fork() == 0:\n"
        "            time.sleep(60)\n            os._exit(0)\n        n += 1\n"
        "except OSError as e:\n    print('blocked after', n, e)\nelse:\n    print('forked', n)\n",
        lambda r, c: "blocked after" in r.stdout and not r.timed_out,
        {"max_processes": 32, "timeout_s": 30},
    ),
    _Probe(
        "memory_bomb",
        'b = b"x" * (4 * 1024 ** 3)\nprint("ALLOCATED", len(b))',
        lambda r, c: "ALLOCATED" not in r.stdout and r.exit_code != 0,
        {"address_space_bytes": 512 * 1024 * 1024},
    ),
    _Probe(
        "cpu_loop",
        "while True:\n    pass",
        lambda r, c: r.limit_hit == "cpu" and r.wall_s < c.limits["timeout_s"],
        {"cpu_s": 1, "timeout_s": 15},
    ),
    _Probe(
        "ctypes_segfault",
        "ctypes.memset(8, 0, 64)",  # a write to an unmapped address
        lambda r, c: r.killed_by == "SIGSEGV",
    ),
    _Probe(
        "ctypes_userns",
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('unshare', libc.unshare(0x10000000), ctypes.get_errno())",
        lambda r, c: "unshare -1" in r.stdout,
    ),
    _Probe(
        "ctypes_system",
        'ctypes.CDLL(None).system(b"cat $secret_file")',
        _absent("$token"),
    ),
)
PROBE_NAMES = tuple(p.name for p in PROBES)
_PRELUDE = "# $marker\nimport ctypes, os, socket, sys, time\n"


def processes_with_marker(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (this process excluded)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker.encode() in Path(entry.path, "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def wait_for_no_marker(marker: str, timeout_s: float = 3.0) -> list[int]:
    """Pids still carrying ``marker`` after up to ``timeout_s`` (empty when all are gone)."""
    deadline = time.monotonic() + timeout_s
    while (left := processes_with_marker(marker)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def _run_probe(sb: Sandbox, probe: _Probe, ctx: _Ctx, python: str) -> ProbeOutcome:
    marker = f"evolvent-probe-{uuid.uuid4().hex}"
    code = Template(_PRELUDE + probe.code).substitute(
        marker=marker,
        port=ctx.port,
        token=ctx.token,
        secret_file=ctx.secret_file,
        write_target=ctx.write_target,
        host_pid=os.getpid(),
    )
    ctx.limits = {"timeout_s": 10.0, **probe.limits}
    res = sb.run([python, "-c", code], limits=sb.limits.model_copy(update=ctx.limits))
    contained = probe.judge(res, ctx)
    out = (res.stdout.strip() or res.stderr.strip()).splitlines()
    detail = f"exit={res.exit_code} killed_by={res.killed_by} limit={res.limit_hit}"
    detail += f" wall={res.wall_s:.2f}s | {(out[-1] if out else '')[:80]}"
    left = wait_for_no_marker(marker)
    if left:
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        contained, detail = False, f"left {len(left)} processes behind; {detail}"
    return ProbeOutcome(name=probe.name, contained=contained, detail=detail, result=res)


def run_selfcheck(
    sb: Sandbox,
    *,
    python: str = "python3",
    outside_dir: Path | None = None,
    only: Collection[str] | None = None,
) -> SelfCheckReport:
    """Run the probes (all, or those named in ``only``) against ``sb``.

    ``outside_dir``: a host directory for the secret file and the write target (default: a
    new temp dir). Pick one outside /tmp too, since a private /tmp alone hides the default.
    """
    probes = [p for p in PROBES if only is None or p.name in only]
    if not Path("/etc/shadow").exists() or not os.access("/etc/shadow", os.R_OK):
        probes = [p for p in probes if p.name != "host_shadow"]  # nothing to leak here
    token = uuid.uuid4().hex
    own_dir = outside_dir is None
    base = Path(tempfile.mkdtemp(prefix="evolvent-probe-")) if outside_dir is None else outside_dir
    # File names must not contain the token: error messages quoting the path would leak it.
    tag = uuid.uuid4().hex[:12]
    secret_file = base / f"secret-{tag}.txt"
    secret_file.write_text(token)
    ctx = _Ctx(0, token, secret_file, base / f"written-{tag}.txt")
    previous = os.environ.get(SECRET_ENV)
    os.environ[SECRET_ENV] = token
    listener = socket.create_server(("127.0.0.1", 0))
    ctx.port = listener.getsockname()[1]
    try:
        outcomes = [_run_probe(sb, p, ctx, python) for p in probes]
    finally:
        listener.close()
        if previous is None:
            os.environ.pop(SECRET_ENV, None)
        else:
            os.environ[SECRET_ENV] = previous
        for f in (secret_file, ctx.write_target):
            f.unlink(missing_ok=True)
        if own_dir:
            base.rmdir()
    return SelfCheckReport(backend=sb.name, outcomes=outcomes)
