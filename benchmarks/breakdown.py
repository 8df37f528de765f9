"""Where the memory time goes: calls and wall time per memory operation, while a block runs.

``timed_operations()`` wraps the methods that ``operations()`` names (on their classes, so every
instance is timed, in every thread) and restores them when the block ends. Times are
inclusive: ``values.learn`` contains the ``chroma.add`` it makes. Everything the process
does while the block runs counts, the mistake notebook's re-plays of failed episodes
included (between episodes, outside the per-episode shares that ``overhead_bench``
reports). ``episode_ms`` is the part of ``ms`` spent inside the recorded episodes' own
memory blocks (``EpisodeContext.memory_time``, and the memory writes of deferred learning;
not the notebook's re-plays): the part that the episodes' memory share counts. Each call
pays about a microsecond of timing, so a run with the breakdown on is a little slower than
one without; ``benchmarks.overhead_bench --breakdown`` reports both the breakdown and the
run's shares.
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
    episode_ms: float = 0.0
    """The part of ``ms`` inside an episode's memory time."""


def _episode_blocks() -> list[tuple[Any, str, bool, int]]:
    """What marks a thread as inside an episode's memory time while it runs (+1), or as
    re-playing for the mistake notebook, whose episodes are not recorded (-1000): (owner,
    name, whether it is a context manager, the mark)."""
    import agent.deferred
    from agent.agent import Agent
    from agent.state import EpisodeContext

    return [
        (EpisodeContext, "memory_time", True, 1),
        (agent.deferred, "write_memories", False, 1),
        (agent.deferred, "synthesize_tools", False, 1),
        (Agent, "_rerun_with_notes", False, -1000),
    ]


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
    restore: list[tuple[Any, str, Any]] = []
    local = threading.local()

    def marked(fn: Callable[..., Any], manager: bool, mark: int) -> Callable[..., Any]:
        def enter() -> None:
            local.depth = getattr(local, "depth", 0) + mark

        def leave() -> None:
            local.depth -= mark

        if manager:

            @functools.wraps(fn)
            @contextmanager
            def block(*args: Any, **kwargs: Any) -> Iterator[Any]:
                enter()
                try:
                    with fn(*args, **kwargs) as value:
                        yield value
                finally:
                    leave()

            return block

        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            enter()
            try:
                return fn(*args, **kwargs)
            finally:
                leave()

        return call

    def wrap(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = 1000.0 * (time.perf_counter() - started)
                with guard:
                    total = totals.setdefault(label, OpTotal())
                    total.calls += 1
                    total.ms += spent
                    if getattr(local, "depth", 0) > 0:
                        total.episode_ms += spent

        return timed

    try:
        for label, (owner, name) in operations().items():
            real = owner.__dict__[name]
            restore.append((owner, name, real))
            setattr(owner, name, wrap(label, real))
        for owner, name, manager, mark in _episode_blocks():
            real = vars(owner)[name]  # a class's or a module's own attribute
            restore.append((owner, name, real))
            setattr(owner, name, marked(real, manager, mark))
        yield totals
    finally:
        for owner, name, real in reversed(restore):
            setattr(owner, name, real)
        for total in totals.values():
            total.ms = round(total.ms, 2)
            total.episode_ms = round(total.episode_ms, 2)
