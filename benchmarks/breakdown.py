"""Where the memory time goes: calls and wall time per memory operation, while a block runs.

``timed_operations()`` wraps the methods that ``operations()`` names (on their classes, so every
instance is timed, in every thread) and restores them when the block ends. Times are
inclusive: ``values.learn`` contains the ``chroma.add`` it makes. Everything the process
does while the block runs counts, the mistake notebook's re-plays of failed episodes
included (between episodes, outside the per-episode shares that ``overhead_bench``
reports). Each call pays about a microsecond of timing, so a run with the breakdown on is
a little slower than one without; ``benchmarks.overhead_bench --breakdown`` reports both
the breakdown and the run's shares.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel


class OpTotal(BaseModel):
    calls: int = 0
    ms: float = 0.0


def operations() -> dict[str, tuple[type, str]]:
    """The operations timed: label -> (class, method name)."""
    from memory.chroma import ChromaBackend
    from memory.chroma_access import ChromaAccess
    from memory.embeddings import HashingEmbedder, SentenceTransformerEmbedder
    from memory.episodic import EpisodicMemory
    from memory.values import ValueFunction, ValueSnapshot

    ops: dict[str, tuple[type, str]] = {
        f"chroma.{name}": (ChromaBackend, name)
        for name in ("add", "upsert", "update", "query", "query_many", "get", "delete", "count")
    }
    ops.update(
        {
            # What reaches Chroma itself: the backend's calls above are answered by the
            # in-memory copy and the journal where they can.
            "chroma.send_journal": (ChromaBackend, "_send_journal"),
            "chroma.write_add_upsert": (ChromaAccess, "_chroma_put"),
            "chroma.write_update": (ChromaAccess, "_chroma_update"),
            "chroma.write_delete": (ChromaAccess, "_chroma_delete"),
            "embed.hashing": (HashingEmbedder, "embed"),
            "embed.minilm": (SentenceTransformerEmbedder, "embed"),
            "episodic.recall": (EpisodicMemory, "recall_vector"),
            "episodic.learn_episode": (EpisodicMemory, "learn_episode"),
            "values.learn": (ValueFunction, "learn"),
            "values.snapshot": (ValueFunction, "snapshot"),
            "values.fit": (ValueFunction, "_fit"),
            "values.assess": (ValueSnapshot, "assess"),
        }
    )
    return ops


@contextmanager
def timed_operations() -> Iterator[dict[str, OpTotal]]:
    """Totals per operation name, filled while the block runs."""
    totals: dict[str, OpTotal] = {}
    guard = threading.Lock()
    restore: list[tuple[type, str, Any]] = []

    def wrap(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                with guard:
                    total = totals.setdefault(label, OpTotal())
                    total.calls += 1
                    total.ms += 1000.0 * spent

        return timed

    try:
        for label, (owner, name) in operations().items():
            real = owner.__dict__[name]
            restore.append((owner, name, real))
            setattr(owner, name, wrap(label, real))
        yield totals
    finally:
        for owner, name, real in reversed(restore):
            setattr(owner, name, real)
        for total in totals.values():
            total.ms = round(total.ms, 2)
