"""Shortlisting the admissible actions when there are too many to offer.

Some environments admit hundreds of actions (ScienceWorld's kitchen: about 800), more than a
small model's prompt and grammar can hold. The executor then offers the ``limit`` actions
most relevant to what the agent reads now: an action scores the rarity (inverse frequency
among the admissible actions) of each of its words that also occurs in the task (counted
twice) or in the current observation. Words shared by most actions ("to", "the", "move")
weigh nothing; the object the task names weighs most. Ties keep the environment's order,
and the shortlist keeps that order too. Actions the step memory proposes are always kept.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def shortlist(
    actions: Sequence[str],
    limit: int,
    *,
    task: str,
    observation: str,
    keep: Iterable[str] = (),
) -> list[str]:
    """At most ``limit`` of ``actions`` (all of them when ``limit`` is 0 or not exceeded)."""
    if limit <= 0 or len(actions) <= limit:
        return list(actions)
    present = set(actions)
    kept = [a for a in dict.fromkeys(keep) if a in present][:limit]
    per_action = [words(a) for a in actions]
    frequency = Counter(w for ws in per_action for w in ws)
    n = len(actions)
    idf = {w: math.log(n / f) for w, f in frequency.items()}
    task_words, seen_words = words(task), words(observation)

    def score(i: int) -> float:
        return sum(idf[w] * (2.0 * (w in task_words) + (w in seen_words)) for w in per_action[i])

    ranked = sorted(range(n), key=lambda i: (-score(i), i))
    chosen = set(kept)
    for i in ranked:
        if len(chosen) >= limit:
            break
        chosen.add(actions[i])
    return [a for a in actions if a in chosen]
