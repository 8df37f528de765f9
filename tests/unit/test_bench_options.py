"""Benchmark scripts refuse bad options with one usage error line, before any work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks import memory_bench, rest_bench, sandbox_bench

Main = Callable[[list[str]], Any]

CASES: list[tuple[Main, list[str], str]] = [
    (memory_bench.main, ["--sizes", "0"], "--sizes must name record counts of at least 1"),
    (memory_bench.main, ["--sizes", "10,abc"], "bad --sizes '10,abc'"),
    (memory_bench.main, ["--sizes", "10", "--queries", "-1"], "--queries must be at least 2"),
    (memory_bench.main, ["--sizes", "10", "--queries", "1"], "--queries must be at least 2"),
    (memory_bench.main, ["--sizes", "10", "--batch", "0"], "--queries must be at least 2"),
    (memory_bench.main, ["--sizes", "10", "--dir", "/nonexistent/x"], "is not a directory"),
    (memory_bench.main, ["--ef-construction", "0"], "--ef-construction must be at least 1"),
    (sandbox_bench.main, ["--runs", "0"], "--runs must be at least 1 and --warmup at least 0"),
    (sandbox_bench.main, ["--warmup", "-1"], "--runs must be at least 1 and --warmup at least 0"),
    (rest_bench.main, ["--runs", "0"], "--runs, --workers and --readers must be at least 1"),
    (rest_bench.main, ["--readers", "0"], "--runs, --workers and --readers must be at least 1"),
    (rest_bench.main, ["--queue", "-1"], "--queue at least 0"),
    (rest_bench.main, ["--deadline", "-1"], "--deadline must be more than 0 seconds"),
    (rest_bench.main, ["--deadline", "nan"], "--deadline must be more than 0 seconds"),
]


@pytest.mark.parametrize(("main", "argv", "message"), CASES)
def test_bad_option_is_a_usage_error(
    main: Main, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err
    assert "Traceback" not in err


def _interruptible() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background shell leaves it ignored


@pytest.mark.parametrize(
    "argv",
    [
        ["benchmarks.sandbox_bench", "--runs", "100000", "--warmup", "0"],
        ["benchmarks.rest_bench", "--runs", "200", "--workers", "2", "--queue", "198"],
    ],
)
def test_ctrl_c_stops_a_script_with_one_line(argv: list[str], tmp_path: Path) -> None:
    """It printed a traceback (two for rest_bench) and exited -2."""
    env = {**os.environ, "EVOLVENT_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [sys.executable, "-m", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_interruptible,
    )
    time.sleep(4)  # into its work (rest_bench: its server starting or its runs)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().endswith("interrupted"), err[-2000:]
