"""Tool-synthesizer: mine recurring procedures of successful episodes into macro tools."""

from __future__ import annotations

from typing import Any

from agent.nodes.reflector import success_of
from agent.state import AgentState, EpisodeContext


def tool_synthesizer(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
    if not (ctx.settings.agent.learn and ctx.settings.agent.use_tools):
        return {"tools_written": []}
    actions = [s["action"] for s in state.get("steps", []) if s["action"] and not s["tool"]]
    with ctx.memory_time():
        new = ctx.toolsmith.observe(
            state["thread_id"], state.get("env_id", ""), actions, success_of(state)
        )
    return {"tools_written": [t.name for t in new]}
