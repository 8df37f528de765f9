"""LLM-free workflow extraction (after Agent Workflow Memory).

The longest common subsequence of several successful trajectories' actions, where two
actions align when they have the same number of words and differ in at most a fraction of
them; the differing words become slots (``cook potato with {X}``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

_SLOT_NAMES = "XYZWVU"


class Workflow(BaseModel):
    """Steps shared by several successful trajectories, with slots where they differ."""

    steps: list[str]
    slots: dict[str, list[str]] = Field(default_factory=dict)
    """Slot name -> the values it took, one per trajectory (repeats removed)."""
    support: int
    """Trajectories it was extracted from."""

    def render(self) -> str:
        text = f"Workflow seen in {self.support} successes: " + " > ".join(self.steps)
        if self.slots:
            filled = "; ".join(f"{{{k}}} = {'|'.join(v[:4])}" for k, v in self.slots.items())
            text += f" ({filled})"
        return text


_Step = list[list[str]]
"""One aligned action: per word position, the word each trajectory had there."""


_SLOT_COST = 1
_STEP_GAIN = 1_000_000
"""An aligned step is worth more than any number of slots it creates: the longest
subsequence wins, and among equally long ones the one with the fewest slots."""


def _slots(step: _Step, words: list[str], max_slot_fraction: float) -> int | None:
    """Slots that aligning ``words`` with ``step`` would create, or None if they don't align."""
    if len(step) != len(words):
        return None
    slots = sum(1 for col, w in zip(step, words, strict=True) if any(v != w for v in col))
    if slots < len(words) and slots <= int(len(words) * max_slot_fraction):
        return slots
    return None


def _lcs(template: list[_Step], actions: list[list[str]], frac: float) -> list[_Step]:
    """Longest common subsequence of a template and one more trajectory, aligned steps
    extended with that trajectory's words."""
    n, m = len(template), len(actions)
    gain = [[_slots(t, a, frac) for a in actions] for t in template]
    best = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            skip = max(best[i + 1][j], best[i][j + 1])
            slots = gain[i][j]
            take = -1 if slots is None else _STEP_GAIN - _SLOT_COST * slots + best[i + 1][j + 1]
            best[i][j] = max(skip, take)
    out: list[_Step] = []
    i = j = 0
    while i < n and j < m:
        slots = gain[i][j]
        if slots is not None and best[i][j] == _STEP_GAIN - _SLOT_COST * slots + best[i + 1][j + 1]:
            out.append([[*col, w] for col, w in zip(template[i], actions[j], strict=True)])
            i, j = i + 1, j + 1
        elif best[i + 1][j] >= best[i][j + 1]:
            i += 1
        else:
            j += 1
    return out


def extract_workflow(
    trajectories: Sequence[Sequence[str]], max_slot_fraction: float = 0.5
) -> Workflow | None:
    """The actions every trajectory shares, in order, with slots where their words differ.

    Deterministic: trajectories are folded in the order given. A word position whose values
    vary becomes a slot; positions that vary identically across steps share a slot name, so
    ``take {X}`` and ``cook {X}`` name the same object. None for fewer than two trajectories
    or nothing in common.
    """
    seqs = [[a.split() for a in t if a.strip()] for t in trajectories]
    if len(seqs) < 2:
        return None
    template: list[_Step] = [[[w] for w in words] for words in seqs[0]]
    for seq in seqs[1:]:
        template = _lcs(template, seq, max_slot_fraction)
    if not template:
        return None
    names: dict[tuple[str, ...], str] = {}
    steps: list[str] = []
    for step in template:
        words: list[str] = []
        for col in step:
            if len(set(col)) == 1:
                words.append(col[0])
                continue
            n = len(names)
            name = names.setdefault(tuple(col), _SLOT_NAMES[n] if n < 6 else f"S{n + 1}")
            words.append(f"{{{name}}}")
        steps.append(" ".join(words))
    slots = {name: list(dict.fromkeys(values)) for values, name in names.items()}
    return Workflow(steps=steps, slots=slots, support=len(seqs))
