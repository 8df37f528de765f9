"""Prompt text for the nodes.

Prompts are plain transcripts that a base model can continue. The executor prompt is
append-only from one step to the next (header, then the growing transcript), so the
server's prefix cache turns most of each step's prompt into a cache hit.
"""

from __future__ import annotations

from collections.abc import Sequence

from memory.records import MemoryHit

MAX_OBS_CHARS = 600
STATE_OBS_CHARS = 300


def approx_tokens(text: str) -> int:
    """~4 characters per token: good enough for budgeting prompt sections."""
    return (len(text) + 3) // 4


def render_memories(
    episodes: Sequence[MemoryHit],
    notes: Sequence[MemoryHit],
    experiences: Sequence[MemoryHit],
    budget_tokens: int,
) -> tuple[str, list[str]]:
    """Memories as prompt text within ``budget_tokens``; returns the text and the ids used.

    Order is by kind then rank; an item that would exceed the budget is skipped.
    """
    sections: list[tuple[str, Sequence[MemoryHit]]] = [
        ("Past episodes", episodes),
        ("Mistakes to avoid", notes),
        ("Insights", experiences),
    ]
    lines: list[str] = []
    used: list[str] = []
    spent = 0
    for title, hits in sections:
        block: list[str] = []
        for h in hits:
            line = f"- {h.text.strip()}"
            cost = approx_tokens(line)
            if spent + cost > budget_tokens:
                continue
            spent += cost
            block.append(line)
            used.append(h.id)
        if block:
            lines.append(f"{title}:")
            lines.extend(block)
    return "\n".join(lines), used


def planner_prompt(task: str, observation: str, memory_text: str) -> str:
    parts = [f"Task: {task.strip()}"]
    if memory_text:
        parts.append(memory_text)
    parts.append(f"Start: {clip(observation)}")
    parts.append("Plan (short numbered subgoals):\n1.")
    return "\n".join(parts)


def executor_prompt(
    task: str,
    plan: str,
    memory_text: str,
    reflections: Sequence[str],
    first_observation: str,
    history: Sequence[tuple[str, str]],
    options: Sequence[str],
    hints: str = "",
) -> str:
    """Header (task, memory, plan, reflections), transcript, then the options and ``> ``."""
    parts = [f"Task: {task.strip()}"]
    if memory_text:
        parts.append(memory_text)
    if plan:
        parts.append(f"Plan:\n{plan.strip()}")
    for r in reflections:
        parts.append(f"Reflection: {r.strip()}")
    parts.append(clip(first_observation))
    for action, obs in history:
        parts.append(f"> {action}\n{clip(obs)}")
    if options:
        parts.append("Valid actions: " + ", ".join(options))
    if hints:
        parts.append(hints)
    return "\n".join(parts) + "\n> "


def state_key(recent_actions: Sequence[str], observation: str) -> str:
    """What step-level memory matches on: the last actions and the observation now.

    Not the task: it is the same for every state of a game family, so it adds nothing to
    tell states apart and its tokens are the largest part of the per-step embedding cost.
    """
    parts = ["Recent: " + " > ".join(recent_actions)] if recent_actions else []
    parts.append(f"Now: {clip(observation, STATE_OBS_CHARS)}")
    return "\n".join(parts)


def render_proposals(proposals: Sequence[tuple[str, float, int]]) -> str:
    """Step-memory proposals as one prompt line: action (value, times seen)."""
    items = [f"{a} (value {v:+.2f}, seen {n}x)" for a, v, n in proposals]
    return "Memory suggests: " + "; ".join(items) if items else ""


def clip(text: str, limit: int = MAX_OBS_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def episode_summary(actions: Sequence[str], outcome: str) -> str:
    """What an episodic memory keeps: the task's outcome and the actions that led to it."""
    return f"{outcome}. Actions: " + " > ".join(actions) if actions else f"{outcome}."
