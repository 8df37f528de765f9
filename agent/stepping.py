"""Several executor steps in one run of the executor node (``agent.steps_per_node``).

Each step is the executor node's function applied to the state as the steps before it in
this run left it, merged the way LangGraph merges node updates (the state's appended
channels, such as ``steps``, grow; every other key takes its newest value). The run hands
back to the graph after ``steps_per_node`` steps, or as soon as the routing after the
executor would leave it (the episode ended, a stall calls for the reflector). The graph
then sees one update equal to what the same steps, run as nodes of their own, would have
written.
"""

from __future__ import annotations

from typing import Any, cast, get_type_hints

from agent import routing
from agent.state import AgentState, EpisodeContext
from agent.timing import NodeFn

APPENDED: frozenset[str] = frozenset(
    key
    for key, hint in get_type_hints(AgentState, include_extras=True).items()
    if getattr(hint, "__metadata__", ())
)
"""State keys whose node updates are appended (an ``Annotated`` reducer), not replaced."""


def merge(update: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """``update`` followed by ``more``, as one node update."""
    out = dict(update)
    for key, value in more.items():
        out[key] = [*out[key], *value] if key in APPENDED and key in out else value
    return out


def stepping(fn: NodeFn) -> NodeFn:
    """The executor node ``fn``, run for up to ``agent.steps_per_node`` steps per call."""

    def executor(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
        update = fn(state, ctx)
        for _ in range(ctx.settings.agent.steps_per_node - 1):
            now = cast(AgentState, merge(cast(dict[str, Any], state), update))
            if routing.after_executor(now) != "executor":
                break
            update = merge(update, fn(now, ctx))
        return update

    executor.__name__ = getattr(fn, "__name__", "executor")
    return executor
