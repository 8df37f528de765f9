"""An in-process backend: records in dicts, embeddings in a numpy matrix per collection.

Exact cosine search by one matrix-vector product; fine up to ~100k records. Used for tests,
for runs that need no persistence, and as the read copy of an embedded Chroma store
(``memory/replica.py``). Records are kept as the JSON Chroma keeps, so what comes back is
what Chroma would give (a fresh object per read, nothing shared with the caller), and
parsing is cheaper than deep-copying a record with a large ``meta``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import numpy as np

from memory.base import VectorBackend
from memory.embeddings import Vectors
from memory.records import MemoryRecord


class _Collection:
    def __init__(self, dim: int) -> None:
        self.ids: list[str] = []
        self.index: dict[str, int] = {}
        self.records: dict[str, str] = {}
        """Id -> the record as JSON."""
        self.created: dict[str, float] = {}
        self.matrix = np.zeros((0, dim), dtype=np.float32)


def _parse(raw: str) -> MemoryRecord:
    return MemoryRecord.model_validate_json(raw)


class InProcessBackend(VectorBackend):
    """``dim``: the width of an empty collection's matrix; as in Chroma, a collection's
    first vectors fix its width."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._cols: dict[str, _Collection] = {}
        self._lock = threading.RLock()

    def _col(self, name: str) -> _Collection:
        col = self._cols.get(name)
        if col is None:
            col = self._cols[name] = _Collection(self.dim)
        return col

    def upsert(self, collection: str, records: Sequence[MemoryRecord], vectors: Vectors) -> None:
        if len(records) != len(vectors):
            raise ValueError("records and vectors differ in length")
        rows = np.asarray(vectors, dtype=np.float32)
        with self._lock:
            col = self._col(collection)
            if len(rows) and col.matrix.shape[1] != rows.shape[1]:
                if col.ids:
                    raise ValueError(
                        f"embedding dimension {rows.shape[1]} does not match collection "
                        f"{collection!r} of dimension {col.matrix.shape[1]}"
                    )
                col.matrix = np.zeros((0, rows.shape[1]), dtype=np.float32)
            new_rows: list[Vectors] = []
            for rec, vec in zip(records, rows, strict=True):
                pos = col.index.get(rec.id)
                if pos is None:
                    col.index[rec.id] = len(col.ids)  # the row it gets: ids grow with them
                    new_rows.append(vec)
                    col.ids.append(rec.id)
                else:
                    col.matrix[pos] = vec
                col.records[rec.id] = rec.model_dump_json()
                col.created[rec.id] = rec.provenance.created_at
            if new_rows:
                col.matrix = np.vstack([col.matrix, np.asarray(new_rows, dtype=np.float32)])

    def add(self, collection: str, records: Sequence[MemoryRecord], vectors: Vectors) -> None:
        if len(records) != len(vectors):
            raise ValueError("records and vectors differ in length")
        with self._lock:
            known = self._col(collection).index
            fresh = [i for i, rec in enumerate(records) if rec.id not in known]
            if fresh:
                self.upsert(collection, [records[i] for i in fresh], vectors[fresh])

    def update(self, collection: str, records: Sequence[MemoryRecord]) -> None:
        with self._lock:
            col = self._col(collection)
            for rec in records:
                if rec.id in col.records:
                    col.records[rec.id] = rec.model_dump_json()
                    col.created[rec.id] = rec.provenance.created_at

    def query(self, collection: str, vector: Vectors, k: int) -> list[tuple[MemoryRecord, float]]:
        with self._lock:
            col = self._col(collection)
            if not col.ids or k <= 0:
                return []
            sims = col.matrix @ np.asarray(vector, dtype=np.float32).reshape(-1)
            k = min(k, len(col.ids))
            top = np.argpartition(-sims, k - 1)[:k]
            top = top[np.argsort(-sims[top], kind="stable")]
            found = [(col.records[col.ids[i]], float(sims[i])) for i in top]
        return [(_parse(raw), sim) for raw, sim in found]

    def get(self, collection: str, ids: Sequence[str]) -> list[MemoryRecord]:
        with self._lock:
            col = self._col(collection)
            found = [col.records[i] for i in dict.fromkeys(ids) if i in col.records]
        return [_parse(raw) for raw in found]

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        with self._lock:
            col = self._col(collection)
            gone = {i for i in ids if i in col.index}
            if not gone:
                return 0
            keep = [pos for pos, i in enumerate(col.ids) if i not in gone]
            col.matrix = col.matrix[keep]
            col.ids = [col.ids[p] for p in keep]
            col.index = {i: p for p, i in enumerate(col.ids)}
            for i in gone:
                del col.records[i]
                del col.created[i]
            return len(gone)

    def scan(self, collection: str) -> Iterator[MemoryRecord]:
        with self._lock:
            col = self._col(collection)
            # Stable: records created in the same instant keep their insertion order.
            items = sorted(((col.created[i], col.records[i]) for i in col.ids), key=_first)
        for _, raw in items:
            yield _parse(raw)

    def drop(self, collection: str) -> bool:
        with self._lock:
            col = self._cols.pop(collection, None)
            return bool(col and col.ids)

    def count(self, collection: str) -> int:
        with self._lock:
            return len(self._col(collection).ids)


def _first(item: tuple[float, str]) -> float:
    return item[0]
