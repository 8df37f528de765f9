"""What the agent's state machine costs by itself: the floor of the framework overhead.

The agent's graph (``agent.graph.build_graph``: the same wiring, routing and per-node
accounting, the same SQLite checkpointer and durability as ``Agent`` uses) is run
with nodes that do no work: the planner plans nothing, each executor step returns a step
record, an observation and admissible actions of the sizes given, the reflector ends the
episode. What an episode of these costs is the part of the overhead that no node can
remove: LangGraph's super-steps and the checkpoints (``agent.durability``: ``sync`` writes
one after each super-step before the next runs, ``async`` while the next runs, ``exit`` one
at the end of the episode). ``--steps-per-node`` plays that many executor steps in each
run of the executor node (``agent.steps_per_node``), one super-step for all of them.

    .venv/bin/python -m benchmarks.graph_floor
    .venv/bin/python -m benchmarks.graph_floor --steps 20 --episodes 50 --json
    .venv/bin/python -m benchmarks.graph_floor --steps-per-node 20

``benchmarks.overhead_bench`` measures it once per run and shows, per row, the share of
wall time it accounts for.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, get_args

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel
from rich.console import Console

from agent.checkpoint import CheckpointStore
from agent.config import Durability, Settings
from agent.errors import EvolventError
from agent.graph import NodeSet, build_graph, recursion_limit
from agent.llm.scripted import ScriptedLLM
from agent.nodes.executor import step_record
from agent.state import AgentState, EpisodeContext
from benchmarks.envs.toy import ToyEnv
from benchmarks.scriptmain import run_script
from memory import HashingEmbedder, MemoryStore
from toolsmith.registry import InProcessToolRegistry
from toolsmith.synthesizer import Toolsmith

DURABILITIES: tuple[Durability, ...] = get_args(Durability)


class Floor(BaseModel):
    """The cost of empty episodes through the agent's graph."""

    steps: int
    """Executor steps per episode."""
    episodes: int
    checkpoints: bool
    durability: Durability = "sync"
    """When the checkpoints were written (with ``checkpoints``)."""
    steps_per_node: int = 1
    """Executor steps per run of the executor node (``agent.steps_per_node``)."""
    ms_per_episode: float
    ms_per_step: float
    """An episode's time divided by its executor steps (planner and reflector included)."""


def empty_nodes(observation_chars: int = 400, admissible: int = 25) -> NodeSet:
    """Nodes that return what the agent's nodes return, of realistic sizes, computing
    nothing."""
    observation = ("You see a counter. " * (1 + observation_chars // 19))[:observation_chars]
    actions = [f"take item {i} from counter" for i in range(admissible)]

    def planner(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
        return {"plan": "", "memory_prompt": "", "memories_used": [], "tools_offered": []}

    def executor(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
        index = state.get("step_count", 0)
        record = step_record(index, actions[index % len(actions)], observation, None, 0.0, 0.0)
        record["source"] = "memory"
        out: dict[str, Any] = {
            "steps": [record],
            "step_count": index + 1,
            "observation": observation,
            "admissible": actions,
            "score": 0.0,
        }
        if index + 1 >= state["max_steps"]:
            out["stop_reason"] = "step_limit"
        return out

    def reflector(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
        return {"finished": True, "reflections": []}

    def tool_synthesizer(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
        return {"tools_written": []}

    return NodeSet(planner, executor, reflector, tool_synthesizer)


def empty_context(memory: MemoryStore, settings: Settings) -> EpisodeContext:
    """A graph run's context whose environment, LLM and toolsmith the empty nodes never use."""
    return EpisodeContext(
        env=ToyEnv(0),
        llm=ScriptedLLM(),
        memory=memory,
        toolsmith=Toolsmith(InProcessToolRegistry(memory.embedder)),
        settings=settings,
        invocation=uuid.uuid4().hex,
        started=time.perf_counter(),
    )


def measure_floor(
    steps: int = 15,
    episodes: int = 30,
    *,
    checkpoints: bool = True,
    durability: Durability = "sync",
    steps_per_node: int = 1,
    warm_up: int = 3,
) -> Floor:
    """Play ``episodes`` empty episodes of ``steps`` executor steps (after ``warm_up``
    untimed ones) and time them, with checkpoints written as ``durability`` says and
    ``steps_per_node`` steps in each run of the executor node."""
    if steps < 1 or episodes < 1 or steps_per_node < 1:
        raise ValueError("steps, episodes and steps_per_node must be at least 1")
    memory = MemoryStore.in_memory(HashingEmbedder())
    settings = Settings()
    settings.agent.steps_per_node = steps_per_node
    with tempfile.TemporaryDirectory(prefix="evolvent-floor-") as tmp:
        store = CheckpointStore(Path(tmp) / "checkpoints.sqlite") if checkpoints else None
        graph = build_graph(store.saver if store else None, empty_nodes())
        try:

            def episode() -> None:
                cfg: RunnableConfig = {
                    "configurable": {"thread_id": uuid.uuid4().hex},
                    "recursion_limit": recursion_limit(steps, 0),
                }
                ctx = empty_context(memory, settings)
                initial: AgentState = {
                    "thread_id": cfg["configurable"]["thread_id"],
                    "task": "empty",
                    "max_steps": steps,
                    "step_count": 0,
                }
                # As Agent drives it with no step callback (the state after each super-step;
                # LangGraph refuses a durability without a checkpointer).
                when: dict[str, Any] = {"durability": durability} if store else {}
                for _ in graph.stream(initial, cfg, context=ctx, stream_mode=["values"], **when):
                    pass

            for _ in range(warm_up):
                episode()
            started = time.perf_counter()
            for _ in range(episodes):
                episode()
            elapsed = time.perf_counter() - started
        finally:
            if store is not None:
                store.close()
            memory.close()
    per_episode = 1000.0 * elapsed / episodes
    return Floor(
        steps=steps,
        episodes=episodes,
        checkpoints=checkpoints,
        durability=durability,
        steps_per_node=steps_per_node,
        ms_per_episode=round(per_episode, 3),
        ms_per_step=round(per_episode / steps, 3),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.graph_floor", description=(__doc__ or "").split("\n\n")[0]
    )
    ap.add_argument("--steps", type=int, default=15, help="executor steps per episode")
    ap.add_argument("--episodes", type=int, default=30, help="timed episodes")
    ap.add_argument(
        "--steps-per-node",
        type=int,
        default=1,
        help="executor steps per run of the executor node (agent.steps_per_node; default 1)",
    )
    ap.add_argument("--json", action="store_true", help="print JSON instead of lines")
    args = ap.parse_args(argv)
    return run_script(lambda err: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.steps < 1 or args.episodes < 1 or args.steps_per_node < 1:
        raise EvolventError("--steps, --episodes and --steps-per-node must be at least 1")
    if args.steps > 10_000:  # a checkpoint stores the step counts as 64-bit integers
        raise EvolventError(f"--steps must be at most 10000, not {args.steps}")
    per_node = args.steps_per_node
    floors = [
        *(
            measure_floor(args.steps, args.episodes, durability=d, steps_per_node=per_node)
            for d in DURABILITIES
        ),
        measure_floor(args.steps, args.episodes, checkpoints=False, steps_per_node=per_node),
    ]
    if args.json:
        print(json.dumps([f.model_dump() for f in floors], indent=1))
        return 0
    out = Console()
    for f in floors:
        what = (
            f"with {f.durability!r} SQLite checkpoints" if f.checkpoints else "without checkpoints"
        )
        out.print(
            f"graph floor {what}: {f.ms_per_step:.2f} ms per executor step, "
            f"{f.ms_per_episode:.1f} ms per {f.steps}-step episode ({f.episodes} episodes, "
            f"{f.steps_per_node} step(s) per executor node)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
