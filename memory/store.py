"""``MemoryStore``: the three memory kinds of one namespace over one backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from memory.base import VectorBackend
from memory.collection import TextCollection
from memory.embeddings import Embedder, default_embedder
from memory.episodic import EpisodicMemory, EpisodicParams
from memory.inprocess import InProcessBackend
from memory.records import MemoryKind, MemoryRecord

KINDS: tuple[MemoryKind, ...] = ("episode", "note", "experience")


class MemoryStore:
    """Episodic memories, mistake notes and distilled experiences of one namespace."""

    def __init__(
        self,
        backend: VectorBackend,
        embedder: Embedder,
        namespace: str = "default",
        episodic: EpisodicParams | None = None,
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.namespace = namespace
        self.episodes = EpisodicMemory(backend, embedder, self._col("episode"), episodic)
        self.notes = TextCollection(backend, embedder, self._col("note"), "note")
        self.experiences = TextCollection(backend, embedder, self._col("experience"), "experience")

    def _col(self, kind: MemoryKind) -> str:
        return f"{self.namespace}__{kind}"

    @classmethod
    def in_memory(
        cls,
        embedder: Embedder | None = None,
        namespace: str = "default",
        episodic: EpisodicParams | None = None,
    ) -> MemoryStore:
        """A store that lives in this process only (tests, throwaway runs)."""
        emb = embedder or default_embedder()
        return cls(InProcessBackend(emb.dim), emb, namespace, episodic)

    def get(self, memory_id: str) -> MemoryRecord | None:
        for kind in KINDS:
            found = self.backend.get(self._col(kind), [memory_id])
            if found:
                return found[0]
        return None

    def delete(self, memory_id: str) -> bool:
        return any(self.backend.delete(self._col(kind), [memory_id]) for kind in KINDS)

    def export(self) -> Iterator[dict[str, Any]]:
        """Every record of the namespace as a JSON-able dict (with its provenance)."""
        for kind in KINDS:
            for rec in self.backend.scan(self._col(kind)):
                yield rec.model_dump(mode="json")

    def stats(self) -> dict[str, int]:
        return {kind: self.backend.count(self._col(kind)) for kind in KINDS}

    def close(self) -> None:
        self.backend.close()
