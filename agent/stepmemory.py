"""The bridge between episodes and step-level action memory.

The executor and the reflector must compute the same state text for the same moment of an
episode, or what is learned is never found again; both use these two functions.
"""

from __future__ import annotations

from agent.prompts import state_key
from agent.state import AgentState
from memory.actions import StepSample


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
