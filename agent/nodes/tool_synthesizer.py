"""Tool-synthesizer: mine recurring procedures of successful episodes into validated tools;
after a failure, maybe ask the LLM for a code tool (``ToolsmithConfig.code_every``)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from agent.nodes.reflector import success_of
from agent.prompts import episode_summary
from agent.state import AgentState, EpisodeContext
from toolsmith.synthesizer import Toolsmith


def tool_synthesizer(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
    if not (ctx.settings.agent.learn and ctx.settings.agent.use_tools):
        return {"tools_written": []}
    return {"tools_written": synthesize_tools(state, ctx.toolsmith, ctx.memory_time)}


def synthesize_tools(
    state: AgentState, toolsmith: Toolsmith, timed: Callable[[], AbstractContextManager[None]]
) -> list[str]:
    """Mine a finished episode into tools (maybe a code tool after a failure); returns the
    names of the active tools it registered. ``timed`` times the registry work (memory time).

    Shared by the tool-synthesizer node and ``Agent.learn_from`` (learning deferred past
    the episode), so both register exactly the same tools.
    """
    steps = [s for s in state.get("steps", []) if s["action"]]
    actions = [s["action"] or "" for s in steps]
    success = success_of(state)
    with timed():
        new = toolsmith.observe(
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
        code = toolsmith.after_failure(state["task"], episode_summary(actions, outcome))
        if code is not None:
            new.append(code)
    # Rejected candidates are kept in the registry with their reason, not reported as written.
    return [t.name for t in new if t.status == "active"]
