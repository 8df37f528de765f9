"""Greedy similarity clustering and the small text clamps shared by the mistake notebook
(``memory/notebook.py``) and the experience distiller (``memory/distill.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from memory.embeddings import Vectors

_SPACE = re.compile(r"\s+")
_BULLET = re.compile(r"^\s*(?:[-*•]+|\d+[.)])\s*")


def greedy_clusters(vectors: Vectors, threshold: float) -> list[list[int]]:
    """Rows grouped by cosine similarity to each cluster's first member (its leader).

    Leader clustering rather than centroids: one pass, order-deterministic, and a cluster
    cannot drift away from what started it as members accumulate.
    """
    clusters: list[list[int]] = []
    leaders: list[int] = []
    for i in range(len(vectors)):
        if leaders:
            sims = vectors[leaders] @ vectors[i]
            best = int(np.argmax(sims))
            if float(sims[best]) >= threshold:
                clusters[best].append(i)
                continue
        leaders.append(i)
        clusters.append([i])
    return clusters


def squash(text: str) -> str:
    """One line, single spaces, no leading list marker."""
    return _BULLET.sub("", _SPACE.sub(" ", text).strip())


def clip_chars(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary when one is close."""
    text = squash(text)
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 3)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.") + "..."


def head_words(text: str, n: int) -> str:
    """The first ``n`` words of ``text``."""
    return " ".join(text.split()[:n]) if n > 0 else ""


def note_key(label: str, task: str, task_words: int) -> str:
    """A retrieval key that names the item and the task it is about.

    The planner queries memory with the task text, so a key without the task's words is
    rarely within the retrieval threshold (a short label scores ~0.4 against a full task
    with MiniLM, versus ~0.85 with the task's head included).
    """
    head = head_words(task, task_words)
    return f"{label} | {head}" if head else label


def unique(items: Sequence[str]) -> list[str]:
    """Items without repeats, compared case- and punctuation-insensitively; order kept."""
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        norm = " ".join(re.findall(r"[a-z0-9]+", item.lower()))
        if norm and norm not in seen:
            seen.add(norm)
            out.append(item)
    return out
