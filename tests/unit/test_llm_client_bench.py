"""benchmarks.llm_client_bench: the client's own cost a call, against the instant endpoint."""

from __future__ import annotations

import json

import pytest

from benchmarks import llm_client_bench


@pytest.mark.parametrize("kind", ["vllm", "llamacpp"])
def test_it_times_real_calls_and_prints_json(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--calls", "5", "--warmup", "1", "--options", "3", "--kind", kind, "--json"]
    assert llm_client_bench.main(argv) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["kind"], row["calls"], row["options"]) == (kind, 5, 3)
    assert row["ms_per_call"] > 0 and row["cpu_ms_per_call"] > 0


def test_a_bad_count_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert llm_client_bench.main(["--calls", "0"]) == 2
    err = capsys.readouterr().err
    assert "--calls and --options must be >= 1" in err and "Traceback" not in err
