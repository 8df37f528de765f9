"""Open the memory store that a ``Settings`` object describes."""

from __future__ import annotations

from agent.config import Settings
from memory.embeddings import Embedder
from memory.store import MemoryStore


def open_memory(
    settings: Settings,
    embedder: Embedder | None = None,
    *,
    namespace: str | None = None,
    read_only: bool = False,
) -> MemoryStore:
    """The store of ``settings.memory``: the Chroma server at ``memory.url`` when set, else
    the embedded store under ``memory_path``; with the namespace (``namespace`` overrides
    it) and the learners' parameters (``memory.episodic``, ``memory.values``) it names."""
    mcfg = settings.memory
    return MemoryStore.open(
        path=None if mcfg.url else settings.memory_path,
        url=mcfg.url,
        namespace=namespace or mcfg.namespace,
        embedder=embedder,
        episodic=mcfg.episodic,
        read_only=read_only,
        values=mcfg.values,
        replica_limit=mcfg.replica_limit,
        write_batch=mcfg.write_batch,
        write_batch_s=mcfg.write_batch_s,
        fit_process=mcfg.fit_process,
    )
