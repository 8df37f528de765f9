"""The bridge between episodes and step-level memory.

The executor and the reflector must compute the same state text (and the same text context)
for the same moment of an episode, or what is learned is never found again; both use these
functions.
"""

from __future__ import annotations

from agent.prompts import state_key
from agent.state import AgentState
from memory.actions import StepSample
from memory.textfeatures import EpisodeText
from memory.values import ValueStep, enablers

STATE_TEXT_CHARS = 500
"""How much of the observation a step-value record keeps as its (searchable) key."""


def current_state(state: AgentState, window: int) -> str:
    """The state the executor is about to act in."""
    actions = [s["action"] for s in state.get("steps", []) if s["action"]]
    recent = actions[-window:] if window else []
    return state_key(recent, state.get("observation", ""))


def samples(state: AgentState, window: int) -> list[StepSample]:
    """(state, action, reward) for every action of a finished episode."""
    out: list[StepSample] = []
    actions: list[str] = []
    observation = state.get("first_observation", "")
    for step in state.get("steps", []):
        if step["action"] is None:
            continue  # the environment did not move: the next step sees the same state
        recent = actions[-window:] if window else []
        out.append(
            StepSample(
                state=state_key(recent, observation),
                action=step["action"],
                reward=step["reward"],
            )
        )
        actions.append(step["action"])
        observation = step["observation"]
    return out


def episode_text(
    state: AgentState, known: tuple[EpisodeText, int] | None = None
) -> tuple[EpisodeText, int]:
    """The text context of the moment the executor is about to act in, and how many of the
    episode's steps it has seen. ``known``: a context returned earlier for this episode and
    its step count; it is extended with the later steps instead of being rebuilt."""
    steps = state.get("steps", [])
    if known is None or known[1] > len(steps):
        ctx, seen = EpisodeText.start(state.get("task", ""), state.get("first_observation", "")), 0
    else:
        ctx, seen = known
    for step in steps[seen:]:
        if step["action"] is not None:
            ctx.observe(step["action"], step["observation"], step["reward"])
    return ctx, len(steps)


def value_steps(state: AgentState, known: tuple[EpisodeText, int] | None = None) -> list[ValueStep]:
    """Every action of a finished episode with its features in the context it was taken in,
    the step that made it admissible, and how many new words its answer showed. ``known``:
    the executor's text context of this episode (``episode_text``), extended to the
    episode's end instead of played again from its start."""
    ctx, _ = episode_text(state, known)
    taken = [s for s in state.get("steps", []) if s["action"] is not None]
    made_possible = enablers(
        [s["action"] or "" for s in taken], [s.get("enabled", []) for s in taken]
    )
    return [
        ValueStep(
            state=before[:STATE_TEXT_CHARS],
            action=view_action,
            reward=step["reward"],
            features=view.features,
            signature=view.signature,
            source=view.source,
            enabler=enabler,
            discovered=discovered,
        )
        for step, enabler, view_action, view, before, discovered in zip(
            taken, made_possible, ctx.taken, ctx.views, ctx.taken_in, ctx.discovered, strict=True
        )
    ]
