"""Actions that changed nothing where the agent stands now (``agent.skip_no_ops``).

The executor leaves them out of what it offers, and ``benchmarks.values_bench`` plays the
value function with the same filter, so that the learner alone is measured as the agent
acts."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class Move(NamedTuple):
    """One step of an episode as the filter needs it."""

    action: str | None
    """``None``: a failed step, which took no action."""
    observation: str
    """The observation the step led to."""
    reward: float
    tool: bool = False
    """Taken by a tool (a macro's step), not chosen on its own."""


def no_op_actions(first_observation: str, moves: Iterable[Move], current: str) -> set[str]:
    """Actions that, taken earlier in this episode in the observation the agent sees now
    (``current``), changed nothing: they left the observation as it was, or they were taken
    there twice before, gained nothing and led to the same observation both times (a loop
    such as "inventory", "examine fridge", "inventory", ...). Going somewhere and coming
    back stays possible; going round the same circle a third time does not."""
    before = first_observation
    found: set[str] = set()
    results: dict[str, list[str]] = {}
    for move in moves:
        if move.action is None:
            continue  # a failed step changed nothing and took no action
        after = move.observation
        if before == current and not move.tool:
            if after == before:
                found.add(move.action)
            elif move.reward == 0.0:
                seen = results.setdefault(move.action, [])
                if after in seen:
                    found.add(move.action)
                seen.append(after)
        before = after
    return found
