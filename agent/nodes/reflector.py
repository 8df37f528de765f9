"""Reflector: mid-episode reflection on stalls; after the episode, turn it into memory.

After the episode: the Q-value of every episodic memory that a prompt contained is updated
with the episode's reward (+1 success, -1 failure), notes and insights that were used get a
vote, the episode is written as an episodic memory, and every step is learned from the
rewards by the step memory the executor reads (step values, or the per-state action values
with ``memory.step_values`` off). Mistake notes and distilled experiences are written between
episodes by the agent (they need several episodes), not here. With ``agent.learn`` off
nothing is written.
"""

from __future__ import annotations

from typing import Any

from agent.config import Settings
from agent.errors import InvalidLLMOutput
from agent.prompts import episode_summary
from agent.stall import describe_loop
from agent.state import AgentState, EpisodeContext
from agent.stepmemory import samples, value_steps
from memory.records import Provenance
from memory.store import MemoryStore
from memory.textfeatures import EpisodeText


def reflector(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
    if state.get("stop_reason") is None and state.get("reflect_mid"):
        return _reflect_mid(state, ctx)
    return _reflect_final(state, ctx)


def _reflect_mid(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
    steps = state.get("steps", [])
    note = describe_loop(steps, ctx.settings.limits.stall_window)
    max_tokens = ctx.settings.agent.reflection_max_tokens
    if max_tokens > 0:
        prompt = f"Task: {state['task']}\n{note}\nLesson learned (one sentence):"
        try:
            lesson = ctx.llm.complete(prompt, max_tokens=max_tokens, stop=["\n"]).text.strip()
        except InvalidLLMOutput:
            lesson = ""
        if lesson:
            note = f"{note} {lesson}"
    return {
        "reflections": [note],
        "reflect_mid": False,
        "last_reflection_step": steps[-1]["index"] if steps else -1,
    }


def success_of(state: AgentState) -> bool:
    """Won, or (for environments without a win signal) reached the maximum score."""
    if state.get("won"):
        return True
    max_score = state.get("max_score", 0.0)
    return bool(not state.get("lost") and max_score > 0 and state.get("score", 0.0) >= max_score)


def _reflect_final(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
    if not ctx.settings.agent.learn:
        return {"finished": True, "memories_written": []}
    with ctx.memory_time():
        written = write_memories(state, ctx.memory, ctx.settings, ctx.episode_text)
    return {"finished": True, "memories_written": written}


def write_memories(
    state: AgentState,
    mem: MemoryStore,
    settings: Settings,
    text: tuple[EpisodeText, int] | None = None,
) -> list[str]:
    """What a finished episode teaches memory; returns the ids written, in order.

    Q update and votes for every memory a prompt contained, the episode as an episodic
    memory, and every step in the step memory that the executor reads: the step-value
    samples (``memory.step_values``, the default) or the per-state action values. Shared
    by the reflector node and ``Agent.learn_from`` (learning deferred past the episode), so
    both make exactly the same writes. ``text``: the executor's text context of the episode,
    when there is one (``EpisodeContext.episode_text``): the step values' features are then
    read from it, not computed again.
    """
    # One disk sync for the episode's writes (an embedded store's journal).
    with mem.grouped():
        return _write_memories(state, mem, settings, text)


def _write_memories(
    state: AgentState,
    mem: MemoryStore,
    settings: Settings,
    text: tuple[EpisodeText, int] | None,
) -> list[str]:
    success = success_of(state)
    reward = 1.0 if success else -1.0
    used = state.get("memories_used", [])
    mem.notes.vote([i for i in used if i.startswith("note-")], up=success)
    mem.experiences.vote([i for i in used if i.startswith("exp-")], up=success)

    actions = [s["action"] for s in state.get("steps", []) if s["action"]]
    max_score = state.get("max_score", 0.0) or 1.0
    norm = state.get("score", 0.0) / max_score
    outcome = (
        f"{'Succeeded' if success else 'Failed'} with score "
        f"{state.get('score', 0.0):g}/{max_score:g} in {len(actions)} actions"
    )
    prov = Provenance(
        episode_id=state["thread_id"],
        env_id=state.get("env_id"),
        seed=state.get("seed"),
        outcome="success" if success else "failure",
        verifier="env-reward",
    )
    # The Q update of the episodic memories used, then the episode itself (one write when
    # it is filed under one of them).
    written = [
        mem.episodes.learn_episode(
            [i for i in used if i.startswith("ep-")],
            reward,
            intent=state["task"],
            experience=episode_summary(actions, outcome),
            success=success,
            reward=norm,
            provenance=prov,
        )
    ]
    if settings.memory.step_values:
        lost = bool(state.get("lost"))
        written += mem.values.learn(value_steps(state, text), success, lost, prov.model_copy())
    else:
        window = settings.agent.state_window
        written += mem.actions.learn(samples(state, window), success, prov.model_copy())
    return list(dict.fromkeys(written))
