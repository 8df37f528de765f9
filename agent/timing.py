"""Wall-time and LLM accounting that nodes add to the checkpointed state.

A node's wall time is measured from the end of the previous node of the same graph run (so
checkpoint writes and scheduling between nodes count as framework time), or from the start
of the run for its first node; time spent dead between a kill and a resume is not counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from langgraph.runtime import Runtime

from agent.state import AgentState, EpisodeContext

NodeFn = Callable[[AgentState, EpisodeContext], dict[str, Any]]


class GraphNode(Protocol):
    __name__: str

    def __call__(self, state: AgentState, *, runtime: Runtime[EpisodeContext]) -> Any: ...


def accounted(fn: NodeFn) -> GraphNode:
    """Wrap a node: inject the context, add its wall, LLM time and tokens to the state."""

    def node(state: AgentState, *, runtime: Runtime[EpisodeContext]) -> dict[str, Any]:
        ctx = runtime.context
        since = state.get("tick", 0.0) if state.get("tick_owner") == ctx.invocation else ctx.started
        before = ctx.llm.meter.snapshot()
        mem_before = ctx.memory_s
        out = fn(state, ctx)
        used = ctx.llm.meter.snapshot() - before
        end = time.perf_counter()
        out["wall_s"] = state.get("wall_s", 0.0) + (end - since)
        out["llm_s"] = state.get("llm_s", 0.0) + used.seconds
        out["memory_s"] = state.get("memory_s", 0.0) + (ctx.memory_s - mem_before)
        out["prompt_tokens"] = state.get("prompt_tokens", 0) + used.prompt_tokens
        out["completion_tokens"] = state.get("completion_tokens", 0) + used.completion_tokens
        out["tick"] = end
        out["tick_owner"] = ctx.invocation
        return out

    node.__name__ = fn.__name__
    return node
