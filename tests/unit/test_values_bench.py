"""The step-value benchmark script plays, learns and reports, and refuses bad input."""

from __future__ import annotations

import json

import pytest

from benchmarks import values_bench
from benchmarks.harness.spec import parse_seeds


def _held_out_wins(capsys: pytest.CaptureFixture[str], train: str) -> int:
    argv = ["--env", "toy:keys", "--train-seeds", train, "--test-seeds", "100-104"]
    assert values_bench.main([*argv, "--runs", "2", "--max-steps", "6", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    run = json.loads(line)
    assert run["run"] == 2 and len(run["held_out"]) == 5
    assert len(run["train"]) == len(parse_seeds(train))
    return sum(e["won"] for e in run["held_out"])


def test_values_bench_learns_on_toy_games(capsys: pytest.CaptureFixture[str]) -> None:
    # Same exploration seed: one training game teaches little, ten teach the game.
    assert _held_out_wins(capsys, "0") <= 1
    assert _held_out_wins(capsys, "0-9") >= 4


def test_values_bench_rejects_bad_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert values_bench.main(["--env", "toy:keys", "--train-seeds", "0-x"]) == 2
    assert "bad seed range" in capsys.readouterr().err
