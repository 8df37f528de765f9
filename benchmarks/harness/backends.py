"""How the harness gets an arm's learned state and its LLM clients; tests inject fakes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from agent.config import Settings
from agent.llm.base import LLMClient
from agent.stores import open_memory
from memory.embeddings import CachedEmbedder, Embedder, HashingEmbedder, default_embedder
from memory.store import MemoryStore
from toolsmith.synthesizer import Toolsmith


@dataclass
class ArmState:
    """What one arm learns in one repeat: its memory store and its tools."""

    memory: MemoryStore
    toolsmith: Toolsmith
    closers: list[Callable[[], None]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        stats = dict(self.memory.stats())
        stats["tool"] = len(self.toolsmith.registry.list_tools())
        return stats

    def close(self) -> None:
        for close in self.closers:
            close()


OpenState = Callable[[Settings, Path], ArmState]
"""``(arm settings, state dir) -> ArmState``: open (or reopen, on resume) an arm's state."""
MakeLLM = Callable[[Settings], LLMClient]
"""A fresh LLM client per worker; clients share the server, never each other."""


@dataclass
class Backends:
    """How the runner gets state and LLM clients; tests inject in-memory fakes."""

    open_state: OpenState
    make_llm: MakeLLM


def default_backends(embedder: str = "minilm") -> Backends:
    """Persistent Chroma memory (embedded, or the server at ``memory.url``) + SQLite tools
    per arm, and ``make_client`` per worker. ``embedder``: ``minilm`` (all-MiniLM-L6-v2)
    or ``hashing`` (instant, for measuring the framework and for tests)."""
    if embedder not in ("minilm", "hashing"):
        raise ValueError(f"unknown embedder {embedder!r}; valid: minilm, hashing")
    cache: list[Embedder] = []
    lock = threading.Lock()

    def shared_embedder() -> Embedder:
        with lock:  # one embedding model for all arms
            if not cache:
                # The hashing embedder behind the same cache as the model (which
                # default_embedder keeps): a task text is embedded ~4 times an episode.
                cache.append(
                    CachedEmbedder(HashingEmbedder())
                    if embedder == "hashing"
                    else default_embedder()
                )
            return cache[0]

    def open_state(settings: Settings, state_dir: Path) -> ArmState:
        from toolsmith.sqlite_registry import SqliteToolRegistry

        emb = shared_embedder()
        mcfg = settings.memory
        store = open_memory(settings, emb)
        registry = SqliteToolRegistry(state_dir / "tools.sqlite", emb, mcfg.namespace)
        return ArmState(store, Toolsmith(registry), [registry.close, store.close])

    def make_llm(settings: Settings) -> LLMClient:
        from agent.llm.factory import make_client

        return make_client(settings.llm)[0]

    return Backends(open_state, make_llm)
