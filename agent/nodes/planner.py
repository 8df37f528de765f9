"""Planner: retrieve the three memory kinds and relevant tools, write a short plan."""

from __future__ import annotations

from typing import Any

from agent.prompts import planner_prompt, render_memories
from agent.state import AgentState, EpisodeContext


def planner(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
    task = state["task"]
    mem = ctx.memory
    cfg = ctx.settings.memory
    with ctx.memory_time():
        episodes = mem.episodes.retrieve(task, k=cfg.top_k) if cfg.top_k else []
        notes = mem.notes.retrieve(task, k=3)
        experiences = mem.experiences.retrieve(task, k=3)
        tools = ctx.toolsmith.registry.retrieve(task, k=5) if ctx.settings.agent.use_tools else []
    memory_text, used = render_memories(episodes, notes, experiences, cfg.prompt_token_budget)

    plan = ""
    max_tokens = ctx.settings.agent.plan_max_tokens
    if max_tokens > 0:
        prompt = planner_prompt(task, state.get("observation", ""), memory_text)
        answer = ctx.llm.complete(prompt, max_tokens=max_tokens, stop=["\n\n", "Task:"])
        plan = "1." + answer.text.rstrip() if answer.text.strip() else ""
    return {
        "plan": plan,
        "memory_prompt": memory_text,
        "memories_used": used,
        "tools_offered": [t.name for t in tools],
    }
