"""Tool-synthesizer: mine recurring procedures of successful episodes into validated tools;
after a failure, maybe ask the LLM for a code tool (``ToolsmithConfig.code_every``)."""

from __future__ import annotations

from typing import Any

from agent.nodes.reflector import success_of
from agent.prompts import episode_summary
from agent.state import AgentState, EpisodeContext


def tool_synthesizer(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
    if not (ctx.settings.agent.learn and ctx.settings.agent.use_tools):
        return {"tools_written": []}
    steps = [s for s in state.get("steps", []) if s["action"]]
    actions = [s["action"] or "" for s in steps]
    success = success_of(state)
    with ctx.memory_time():
        new = ctx.toolsmith.observe(
            state["thread_id"],
            state.get("env_id", ""),
            actions,
            success,
            seed=state.get("seed"),
            from_tool=[s["tool"] is not None for s in steps],
            score=state.get("score"),
        )
    if not success:
        outcome = f"Failed with score {state.get('score', 0.0):g}/{state.get('max_score', 0.0):g}"
        code = ctx.toolsmith.after_failure(state["task"], episode_summary(actions, outcome))
        if code is not None:
            new.append(code)
    # Rejected candidates are kept in the registry with their reason, not reported as written.
    return {"tools_written": [t.name for t in new if t.status == "active"]}
