"""``benchmarks.graph_floor``: the agent's graph with empty nodes, timed."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import pytest
from langchain_core.runnables import RunnableConfig

from agent.checkpoint import CheckpointStore
from agent.config import Settings
from agent.graph import build_graph
from agent.state import AgentState
from benchmarks import graph_floor
from memory import HashingEmbedder, MemoryStore


def test_empty_nodes_play_an_episode_through_the_agents_graph(tmp_path: Path) -> None:
    """The empty nodes run the real wiring to its end: one step record per executor step,
    a checkpoint per node, the accounting of the real graph."""
    store = CheckpointStore(tmp_path / "c.sqlite")
    graph = build_graph(store.saver, graph_floor.empty_nodes(observation_chars=100))
    thread = uuid.uuid4().hex
    ctx = graph_floor.empty_context(MemoryStore.in_memory(HashingEmbedder()), Settings())
    initial: AgentState = {"thread_id": thread, "task": "t", "max_steps": 4, "step_count": 0}
    cfg: RunnableConfig = {"configurable": {"thread_id": thread}}
    nodes = [
        name
        for update in graph.stream(initial, cfg, context=ctx, stream_mode="updates")
        for name in update
    ]
    assert nodes == ["planner", *["executor"] * 4, "reflector", "tool_synthesizer"]
    final = graph.get_state(cfg).values
    assert [s["index"] for s in final["steps"]] == [0, 1, 2, 3]
    assert len(final["steps"][0]["observation"]) == 100
    assert final["stop_reason"] == "step_limit" and final["finished"]
    assert final["wall_s"] > 0
    store.close()
    rows = sqlite3.connect(tmp_path / "c.sqlite").execute("SELECT count(*) FROM checkpoints")
    assert rows.fetchone()[0] >= 7  # one per node at least


def test_the_floor_is_measured_with_and_without_checkpoints() -> None:
    with_ck = graph_floor.measure_floor(5, 4, checkpoints=True, warm_up=1)
    without = graph_floor.measure_floor(5, 4, checkpoints=False, warm_up=1)
    assert (with_ck.steps, with_ck.episodes, with_ck.checkpoints) == (5, 4, True)
    assert not without.checkpoints
    at_exit = graph_floor.measure_floor(5, 4, durability="exit", warm_up=1)
    assert at_exit.checkpoints and at_exit.durability == "exit"
    for f in (with_ck, without, at_exit):
        assert f.ms_per_step > 0
        assert f.ms_per_step == pytest.approx(f.ms_per_episode / 5, rel=0.01)


def test_the_script_prints_every_floor_and_refuses_bad_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert graph_floor.main(["--steps", "3", "--episodes", "2", "--json"]) == 0
    floors = json.loads(capsys.readouterr().out)
    assert [f["checkpoints"] for f in floors] == [True, True, True, False]
    assert [f["durability"] for f in floors[:3]] == ["sync", "async", "exit"]
    assert graph_floor.main(["--steps", "2", "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    for what in ("'sync' SQLite checkpoints", "'exit' SQLite checkpoints", "without checkpoints"):
        assert what in out
    assert graph_floor.main(["--steps", "0"]) == 2
    assert "--steps, --episodes and --steps-per-node must be" in capsys.readouterr().err
    assert graph_floor.main(["--steps", "4", "--episodes", "1", "--steps-per-node", "4"]) == 0
    assert "4 step(s) per executor node" in capsys.readouterr().out
    assert graph_floor.main(["--steps-per-node", "0"]) == 2
    assert "must be at least 1" in capsys.readouterr().err
    assert graph_floor.main(["--steps", "1" + "0" * 20]) == 2  # a checkpoint's TypeError
    assert "--steps must be at most 10000" in capsys.readouterr().err


def test_steps_per_node_runs_the_executor_node_less_often(tmp_path: Path) -> None:
    """With ``agent.steps_per_node`` 3, a 7-step episode is three runs of the executor node
    (3 + 3 + 1 steps) with the same step records, and the floor per step falls."""
    store = CheckpointStore(tmp_path / "c.sqlite")
    graph = build_graph(store.saver, graph_floor.empty_nodes(observation_chars=100))
    thread = uuid.uuid4().hex
    settings = Settings()
    settings.agent.steps_per_node = 3
    ctx = graph_floor.empty_context(MemoryStore.in_memory(HashingEmbedder()), settings)
    initial: AgentState = {"thread_id": thread, "task": "t", "max_steps": 7, "step_count": 0}
    cfg: RunnableConfig = {"configurable": {"thread_id": thread}}
    updates = list(graph.stream(initial, cfg, context=ctx, stream_mode="updates"))
    runs = [len(u["executor"]["steps"]) for u in updates if "executor" in u]
    assert runs == [3, 3, 1]
    final = graph.get_state(cfg).values
    assert [s["index"] for s in final["steps"]] == list(range(7))
    assert final["step_count"] == 7 and final["stop_reason"] == "step_limit"
    store.close()
    one = graph_floor.measure_floor(12, 6, steps_per_node=1, warm_up=1)
    many = graph_floor.measure_floor(12, 6, steps_per_node=12, warm_up=1)
    assert many.steps_per_node == 12 and one.steps_per_node == 1
    assert many.ms_per_step < one.ms_per_step
