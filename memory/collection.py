"""A similarity-retrieved collection of keyed texts (mistake notes, distilled experiences).

Near-duplicate keys are merged instead of stored twice; each record keeps votes (``q``) so
low-utility items can be retired.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from memory.base import VectorBackend
from memory.embeddings import Embedder
from memory.records import MemoryHit, MemoryKind, MemoryRecord, Provenance, new_id


class TextCollection:
    def __init__(
        self,
        backend: VectorBackend,
        embedder: Embedder,
        collection: str,
        kind: MemoryKind,
        threshold: float = 0.7,
        merge_threshold: float = 0.9,
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.collection = collection
        self.kind = kind
        self.threshold = threshold
        self.merge_threshold = merge_threshold
        self._lock = threading.Lock()

    def add(
        self,
        key: str,
        text: str,
        provenance: Provenance | None = None,
        meta: dict[str, Any] | None = None,
    ) -> str:
        """Store ``text`` under ``key``; a near-duplicate key updates the existing record."""
        vec = self.embedder.embed([key])
        with self._lock:
            near = self.backend.query(self.collection, vec[0], 1)
            if near and near[0][1] >= self.merge_threshold:
                rec = near[0][0]
                rec.text = text
                rec.meta.update(meta or {})
                rec.meta["merged"] = int(rec.meta.get("merged", 0)) + 1
                rec.provenance.updated_at = time.time()
                self.backend.update(self.collection, [rec])
                return rec.id
            prefix = {"note": "note", "experience": "exp", "episode": "ep", "action": "act"}[
                self.kind
            ]
            rec = MemoryRecord(
                id=new_id(prefix),
                kind=self.kind,
                key=key,
                text=text,
                provenance=provenance or Provenance(),
                meta=meta or {},
            )
            self.backend.add(self.collection, [rec], vec)
            return rec.id

    def retrieve(self, query: str, k: int = 3) -> list[MemoryHit]:
        vec = self.embedder.embed([query])[0]
        hits = self.backend.query(self.collection, vec, k)
        return [
            MemoryHit(
                id=r.id,
                kind=self.kind,
                key=r.key,
                text=r.text,
                similarity=s,
                q=r.q,
                score=s,
                record=r,
            )
            for r, s in hits
            if s >= self.threshold
        ]

    def vote(self, ids: list[str], up: bool) -> None:
        """Evidence for (up) or against an item after an episode that used it."""
        with self._lock:
            recs = self.backend.get(self.collection, ids)
            for rec in recs:
                rec.q += 1.0 if up else -1.0
                rec.uses += 1
                rec.successes += int(up)
                rec.failures += int(not up)
                rec.provenance.updated_at = time.time()
            self.backend.update(self.collection, recs)

    def count(self) -> int:
        return self.backend.count(self.collection)
