"""Benchmark scripts refuse bad options with one usage error line, before any work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from benchmarks import memory_bench, rest_bench, sandbox_bench

Main = Callable[[list[str]], Any]

CASES: list[tuple[Main, list[str], str]] = [
    (memory_bench.main, ["--sizes", "0"], "--sizes must name record counts of at least 1"),
    (memory_bench.main, ["--sizes", "10,abc"], "bad --sizes '10,abc'"),
    (memory_bench.main, ["--sizes", "10", "--queries", "-1"], "--queries and --batch must"),
    (memory_bench.main, ["--sizes", "10", "--batch", "0"], "--queries and --batch must"),
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
