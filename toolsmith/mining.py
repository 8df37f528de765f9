"""LLM-free mining of recurring action subsequences into macros (after AWM / Voyager skills).

A contiguous action subsequence that occurs in at least ``min_support`` different successful
trajectories becomes a candidate macro; shorter candidates wholly contained in a longer one
with the same support are dropped so the toolset stays small.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, Field


class MinedMacro(BaseModel):
    steps: list[str]
    support: list[str] = Field(default_factory=list)
    """Ids of the episodes that contain it."""


def mine_macros(
    trajectories: Sequence[tuple[str, Sequence[str]]],
    min_support: int = 2,
    min_len: int = 2,
    max_len: int = 4,
) -> list[MinedMacro]:
    """``trajectories`` are (episode id, actions) pairs of successful episodes."""
    seen: dict[tuple[str, ...], set[str]] = {}
    for episode_id, actions in trajectories:
        acts = list(actions)
        for n in range(min_len, max_len + 1):
            for i in range(len(acts) - n + 1):
                gram = tuple(acts[i : i + n])
                if len(set(gram)) < len(gram):
                    continue  # a repeated action inside is a loop, not a procedure
                seen.setdefault(gram, set()).add(episode_id)
    frequent = {g: s for g, s in seen.items() if len(s) >= min_support}
    maximal = [
        g
        for g, s in frequent.items()
        if not any(len(h) > len(g) and frequent[h] == s and _contains(h, g) for h in frequent)
    ]
    maximal.sort(key=lambda g: (-len(frequent[g]), -len(g), g))
    return [MinedMacro(steps=list(g), support=sorted(frequent[g])) for g in maximal]


def _contains(big: tuple[str, ...], small: tuple[str, ...]) -> bool:
    n = len(small)
    return any(big[i : i + n] == small for i in range(len(big) - n + 1))


_SLUG = re.compile(r"[^a-z0-9]+")


def macro_name(steps: Sequence[str]) -> str:
    """A readable, stable name from the actions: ``take_knife__slice_carrot``."""
    parts = [_SLUG.sub("_", s.lower()).strip("_")[:24] for s in steps]
    return "__".join(parts)[:96]
