"""``python -m benchmarks.overhead_bench`` tiny (toy env, hashing embedder): its JSON output,
its table, the instant endpoint it runs on, and its one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import overhead_bench
from benchmarks.harness.endpoint import answer, grammar_choices, instance


@pytest.fixture(autouse=True)
def _isolated(evolvent_home: Path) -> None:
    """No EVOLVENT_* variable of the caller leaks into the settings; games go to tmp."""


def test_tiny_run_reports_every_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--envs", "toy:keys", "--embedders", "hashing", "--concurrency", "1,2"]
    argv += ["--train-seeds", "0-3", "--test-seeds", "100", "--max-steps", "3", "--json"]
    assert overhead_bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    rows, floor = out["rows"], out["graph_floor"]
    assert floor["steps"] == 3 and floor["checkpoints"] and floor["ms_per_step"] > 0
    assert [(r["env"], r["embedder"], r["concurrency"]) for r in rows] == [
        ("toy:keys", "hashing", 1),
        ("toy:keys", "hashing", 2),
    ]
    for r in rows:
        assert set(r) == set(overhead_bench.Row.model_fields)
        assert r["episodes"] == 1 + 4 + 1  # one arm: pre, train, post
        assert 0 < r["steps"] <= 3 * r["episodes"]
        # Real time was spent in the LLM client (HTTP round trips) and measured apart.
        assert 0 < r["llm_s"] < r["wall_s"] and 0 <= r["env_s"] < r["wall_s"]
        assert r["memory_s"] > 0  # the full arm retrieves and writes memory
        outside = 100 * (r["wall_s"] - r["llm_s"] - r["env_s"]) / r["wall_s"]
        # The seconds are rounded to ms: on a run this short that moves a share by tenths.
        rounding = 0.01 + 100 * 4 * 0.0005 / r["wall_s"]
        assert r["overhead_pct"] == pytest.approx(outside, abs=max(0.2, rounding))
        assert r["overhead_pct"] == pytest.approx(r["memory_pct"] + r["framework_pct"], abs=0.2)
        assert r["ms_per_step"] == pytest.approx(1000 * r["wall_s"] / r["steps"], rel=0.01)
        assert r["episodes_per_s"] == pytest.approx(r["episodes"] / r["elapsed_s"], rel=0.01)
        floor_s = r["steps"] * floor["ms_per_step"] / 1000
        assert r["graph_floor_pct"] == pytest.approx(100 * floor_s / r["wall_s"], abs=0.2)
        # The real nodes do more than the empty ones: the floor is a part of the overhead.
        assert 0 < r["graph_floor_pct"] < r["overhead_pct"]


def test_durability_and_steps_per_node_reach_the_agent_and_the_floor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--envs", "toy:keys", "--embedders", "hashing", "--concurrency", "1"]
    argv += ["--train-seeds", "0-1", "--test-seeds", "100", "--max-steps", "3"]
    more = ["--durability", "exit", "--steps-per-node", "3", "--json"]
    assert overhead_bench.main([*argv, *more]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["durability"] == "exit" and out["graph_floor"]["durability"] == "exit"
    assert out["steps_per_node"] == 3 and out["graph_floor"]["steps_per_node"] == 3
    assert len(out["rows"]) == 1 and out["rows"][0]["episodes"] == 1 + 2 + 1
    with pytest.raises(SystemExit) as bad:  # argparse's own usage error
        overhead_bench.main([*argv, "--durability", "never"])
    assert bad.value.code == 2
    assert "invalid choice: 'never'" in capsys.readouterr().err
    assert overhead_bench.main([*argv, "--steps-per-node", "0"]) == 2
    assert "bad --steps-per-node 0" in capsys.readouterr().err


def test_table_has_a_row_per_configuration() -> None:
    row = overhead_bench.aggregate(
        [
            {"wall_s": 1.0, "llm_s": 0.5, "env_s": 0.25, "memory_s": 0.1, "steps": 4},
            {"wall_s": 1.0, "llm_s": 0.5, "env_s": 0.25, "memory_s": 0.1, "steps": 6},
        ],
        "toy:keys",
        "hashing",
        4,
        elapsed=0.5,
        floor_ms_per_step=20.0,
    )
    assert (row.overhead_pct, row.memory_pct, row.framework_pct) == (25.0, 10.0, 15.0)
    assert (row.ms_per_step, row.episodes_per_s, row.graph_floor_pct) == (200.0, 4.0, 10.0)
    t = overhead_bench.table([row])
    assert t.row_count == 1 and len(t.columns) == 15


def test_bad_options_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert overhead_bench.main(["--embedders", "word2vec"]) == 2
    assert "unknown embedder 'word2vec'; valid: hashing, minilm" in capsys.readouterr().err
    assert overhead_bench.main(["--concurrency", "one"]) == 2
    assert "bad --concurrency 'one'" in capsys.readouterr().err
    # Refused before anything is measured: one line each, no traceback.
    for argv, message in [
        (["--max-steps", "0"], "bad --max-steps 0; it must be 1 to 10000"),
        (["--max-steps", "1" + "0" * 20], "it must be 1 to 10000"),
        (["--llm-delay-ms", "-5"], "bad --llm-delay-ms -5; it must be 0 to 60000"),
        (["--llm-delay-ms", "inf"], "bad --llm-delay-ms inf; it must be 0 to 60000"),
        (["--concurrency", "1,0"], "bad --concurrency '1,0'; each N must be at least 1"),
        (["--envs", ""], "--envs names nothing to measure"),
        (["--concurrency", ","], "--concurrency names nothing to measure"),
    ]:
        assert overhead_bench.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err


def test_endpoint_answers_validly() -> None:
    assert grammar_choices('root ::= "go north" | "say \\"hi\\""') == ["go north", 'say "hi"']
    assert grammar_choices("root ::= object\nobject ::= ...") is None
    body = {"structured_outputs": {"choice": ["a", "b", "c"]}}
    picks = {answer(body, f"prompt {i}", "hash") for i in range(20)}
    assert picks == {"a", "b", "c"}  # the hash spreads over the options
    assert answer(body, "x", "first") == "a"
    enum = {"properties": {"choice": {"enum": ["x", "y"]}}}
    assert json.loads(answer({"response_format": {"schema": enum}}, "p", "first")) == {
        "choice": "x"
    }
    schema = {
        "type": "object",
        "properties": {
            "subject": {"type": "string"},
            "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "minItems": 2},
            "n": {"type": "integer", "minimum": 3},
        },
        "$defs": {"Tag": {"type": "string", "enum": ["t1", "t2"]}},
    }
    assert instance(schema) == {"subject": "subject (instant)", "tags": ["t1", "t1"], "n": 3}
    assert answer({"stop": ["\n"]}, "plan", "hash") == "1. look around"


def test_breakdown_times_the_memory_operations_of_the_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--envs", "toy:keys", "--embedders", "hashing", "--concurrency", "1"]
    argv += ["--train-seeds", "0-2", "--test-seeds", "100", "--max-steps", "4"]
    assert overhead_bench.main([*argv, "--breakdown", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    ops = row["breakdown"]
    # The run learned 3 episodes: one step-value record each, through Chroma; it scored
    # every step with the values learned so far.
    assert ops["values.learn"]["calls"] == 3 and ops["chroma.add"]["calls"] >= 3
    assert ops["values.assess"]["calls"] > 0 and ops["episodic.recall"]["calls"] > 0
    assert all(op["calls"] > 0 and op["ms"] >= 0 for op in ops.values())
    assert list(ops) == sorted(ops, key=lambda k: -ops[k]["ms"])  # most time first
    # Inclusive: learning contains its own Chroma add; none exceeds the memory time by much.
    assert ops["values.learn"]["ms"] <= 1000 * row["memory_s"] + 5
    # What the episodes' memory share counts: scoring actions and learning (the reflector's
    # writes) are inside it; no operation counts more inside episodes than in all.
    assert ops["values.assess"]["episode_ms"] > 0 and ops["values.learn"]["episode_ms"] > 0
    assert all(op["episode_ms"] <= op["ms"] for op in ops.values())
    assert sum(op["episode_ms"] for op in ops.values()) > 0
    # The methods are restored after the run: no timing left behind.
    from memory.values import ValueFunction

    assert not hasattr(ValueFunction.__dict__["learn"], "__wrapped__")
    assert overhead_bench.main([*argv, "--json"]) == 0
    (plain,) = json.loads(capsys.readouterr().out)["rows"]
    assert plain["breakdown"] is None
    assert overhead_bench.main([*argv, "--breakdown"]) == 0
    assert "memory operations: toy:keys" in capsys.readouterr().out


def test_timed_operations_restore_the_methods_even_on_error() -> None:
    import agent.deferred
    from agent.state import EpisodeContext
    from benchmarks.breakdown import operations, timed_operations

    marks = (EpisodeContext.__dict__["memory_time"], vars(agent.deferred)["write_memories"])
    before = {label: owner.__dict__[name] for label, (owner, name) in operations().items()}
    with pytest.raises(RuntimeError), timed_operations() as totals:
        from memory import HashingEmbedder

        HashingEmbedder().embed(["a b"])
        raise RuntimeError("boom")
    assert totals["embed.hashing"].calls == 1
    assert totals["embed.hashing"].episode_ms == 0  # not inside an episode's memory time
    after = {label: owner.__dict__[name] for label, (owner, name) in operations().items()}
    assert after == before
    assert (EpisodeContext.__dict__["memory_time"], vars(agent.deferred)["write_memories"]) == marks
