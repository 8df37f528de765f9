"""The storage primitives a memory backend implements.

A backend stores records with their embeddings in named collections and answers nearest
neighbour queries. Everything else (two-phase retrieval, Q updates, merging) is written once
on top of these primitives in ``memory/episodic.py`` and ``memory/collection.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext

from memory.embeddings import Vectors
from memory.records import MemoryRecord


class VectorBackend(ABC):
    """Collections of (record, unit embedding); similarity is cosine."""

    @abstractmethod
    def upsert(self, collection: str, records: Sequence[MemoryRecord], vectors: Vectors) -> None:
        """Insert or replace records (by id) with their embeddings."""

    def add(self, collection: str, records: Sequence[MemoryRecord], vectors: Vectors) -> None:
        """Insert records with new ids (a back-end may make this cheaper than ``upsert``,
        which must look every id up first). An id that already exists is left unchanged."""
        self.upsert(collection, records, vectors)

    @abstractmethod
    def update(self, collection: str, records: Sequence[MemoryRecord]) -> None:
        """Replace records' metadata, keeping their embeddings."""

    @abstractmethod
    def query(self, collection: str, vector: Vectors, k: int) -> list[tuple[MemoryRecord, float]]:
        """The ``k`` nearest records with their cosine similarity, best first."""

    def query_many(
        self, collection: str, vectors: Vectors, k: int
    ) -> list[list[tuple[MemoryRecord, float]]]:
        """``query`` for each row of ``vectors`` (one round trip where the back-end allows)."""
        return [self.query(collection, v, k) for v in vectors]

    @abstractmethod
    def get(self, collection: str, ids: Sequence[str]) -> list[MemoryRecord]:
        """Records by id (missing ids are skipped)."""

    @abstractmethod
    def delete(self, collection: str, ids: Sequence[str]) -> int:
        """Delete records by id; returns how many existed."""

    @abstractmethod
    def scan(self, collection: str) -> Iterator[MemoryRecord]:
        """All records of a collection, oldest (``provenance.created_at``) first."""

    @abstractmethod
    def count(self, collection: str) -> int: ...

    def drop(self, collection: str) -> bool:
        """Delete a whole collection; returns whether it held anything.

        Backends override this with their native drop; this fallback deletes record by record.
        """
        return self.delete(collection, [r.id for r in self.scan(collection)]) > 0

    def grouped(self) -> AbstractContextManager[None]:
        """A block whose writes this back-end may make durable together at its end (one
        disk sync for several writes, ``ChromaBackend``); they are visible at once either
        way. The default makes each durable as it is made."""
        return nullcontext()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and connections."""
