"""Stall detection: when to pause the episode for a mid-episode reflection."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from agent.state import StepRecord


def detect_stall(
    steps: Sequence[StepRecord],
    window: int,
    reflections: int,
    max_reflections: int,
    last_reflection_step: int,
) -> bool:
    """True when the last ``window`` steps gained nothing and repeat themselves.

    "Repeat" means at most half of the window's actions are distinct (a loop such as
    open/close the same thing), or they were failed steps. At most ``max_reflections`` per
    episode, and not again within a window of the previous one.
    """
    if reflections >= max_reflections or len(steps) < window:
        return False
    recent = steps[-window:]
    if recent[0]["index"] <= last_reflection_step:
        return False
    if any(s["reward"] > 0 for s in recent):
        return False
    distinct = len({s["action"] for s in recent})
    return distinct <= window // 2


def describe_loop(steps: Sequence[StepRecord], window: int) -> str:
    """A one-line, LLM-free description of what the recent steps did."""
    recent = steps[-window:]
    counts = Counter(s["action"] or "(no valid action)" for s in recent)
    top = ", ".join(f"'{a}' x{n}" for a, n in counts.most_common(3))
    first, last = recent[0]["index"] + 1, recent[-1]["index"] + 1
    return f"Steps {first}-{last} made no progress; repeated {top}. Try something different."
