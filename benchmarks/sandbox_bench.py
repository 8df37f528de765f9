"""Launch overhead of each sandbox backend against a bare subprocess.

    .venv/bin/python -m benchmarks.sandbox_bench [--runs 50] [--selfcheck]

Times ``python3 -c pass`` through ``Sandbox.run`` (work dir, cgroup, namespaces and cleanup
included) and through a bare ``subprocess.run``, interleaved round by round so drift in the
machine's load hits every backend alike. Backends that cannot run here are listed with the
reason. ``--selfcheck`` also prints the security probe table per backend.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import subprocess
import time
import warnings
from collections.abc import Callable

from benchmarks.scriptmain import run_script
from sandbox import InsecureSandboxWarning, Sandbox, probe_backends, run_selfcheck
from sandbox.base import SANDBOX_PATH

INSECURE_LOGGER = "sandbox.subprocess_backend"


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _bare(argv: list[str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(argv, capture_output=True, check=True)

    return run


def _boxed(sb: Sandbox, argv: list[str]) -> Callable[[], None]:
    def run() -> None:
        res = sb.run(argv)
        if res.exit_code != 0:
            raise RuntimeError(f"{sb.name}: {argv} failed: {res.stderr.strip()[-200:]}")

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=50, help="timed runs per backend")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per backend first")
    parser.add_argument("--selfcheck", action="store_true", help="also run the security probes")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    return run_script(lambda err: _bench(args))


def _bench(args: argparse.Namespace) -> int:
    # The subprocess backend is measured on purpose: its warning (no security boundary) is
    # given each time one is made and run, not only while probing.
    warnings.filterwarnings("ignore", category=InsecureSandboxWarning)
    logging.getLogger(INSECURE_LOGGER).setLevel(logging.ERROR)  # its log line, too

    python = shutil.which("python3", path=SANDBOX_PATH) or "python3"
    command = [python, "-c", "pass"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureSandboxWarning)
        found = probe_backends()
    boxes = {name: sb for name, sb in found.items() if isinstance(sb, Sandbox)}
    runners = {"bare": _bare(command), **{n: _boxed(sb, command) for n, sb in boxes.items()}}

    for run in runners.values():
        for _ in range(args.warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.runs):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - start) * 1000)

    base_med = statistics.median(samples["bare"])
    base_p95 = _p95(samples["bare"])
    print(f"launch of `{' '.join(command)}`, {args.runs} runs each, wall ms")
    print(f"{'backend':12} {'median':>8} {'p95':>8} {'overhead median':>16} {'overhead p95':>13}")
    for name, values in samples.items():
        med, p95 = statistics.median(values), _p95(values)
        extra = "" if name == "bare" else f"{med - base_med:+16.1f} {p95 - base_p95:+13.1f}"
        print(f"{name:12} {med:8.1f} {p95:8.1f} {extra}")
    for name, why in found.items():
        if isinstance(why, str):
            print(f"skipped {name}: {why}")
    for name, sb in boxes.items():
        print(f"{name} isolation: " + "; ".join(f"{k}: {v}" for k, v in sb.info().items()))
    if args.selfcheck:
        for sb in boxes.values():
            print(run_selfcheck(sb, python=python).format())
    for sb in boxes.values():
        sb.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
