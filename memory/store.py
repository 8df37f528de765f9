"""``MemoryStore``: the three memory kinds of one namespace over one backend."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from memory.actions import ActionMemory
from memory.base import VectorBackend
from memory.collection import TextCollection
from memory.embeddings import Embedder, default_embedder
from memory.episodic import EpisodicMemory, EpisodicParams
from memory.inprocess import InProcessBackend
from memory.records import MemoryKind, MemoryRecord
from memory.replica import REPLICA_LIMIT
from memory.values import ValueFunction, ValueParams

KINDS: tuple[MemoryKind, ...] = ("episode", "note", "experience", "action", "value")


class MemoryStore:
    """Episodic memories, mistake notes, distilled experiences and step values of one
    namespace."""

    def __init__(
        self,
        backend: VectorBackend,
        embedder: Embedder,
        namespace: str = "default",
        episodic: EpisodicParams | None = None,
        values: ValueParams | None = None,
        *,
        fit_process: bool = False,
    ) -> None:
        """``episodic`` and ``values``: the parameters of the episodic memory's retrieval
        and update rule and of the step-value learner (defaults when ``None``);
        ``fit_process``: the step values may refit in a worker process
        (``ValueFunction``)."""
        self.backend = backend
        self.embedder = embedder
        self.namespace = namespace
        self.episodes = EpisodicMemory(backend, embedder, self._col("episode"), episodic)
        self.notes = TextCollection(backend, embedder, self._col("note"), "note")
        self.experiences = TextCollection(backend, embedder, self._col("experience"), "experience")
        self.actions = ActionMemory(backend, embedder, self._col("action"))
        self.values = ValueFunction(
            backend, embedder, self._col("value"), values, fit_process=fit_process
        )

    def _col(self, kind: MemoryKind) -> str:
        return f"{self.namespace}__{kind}"

    @classmethod
    def in_memory(
        cls,
        embedder: Embedder | None = None,
        namespace: str = "default",
        episodic: EpisodicParams | None = None,
        values: ValueParams | None = None,
    ) -> MemoryStore:
        """A store that lives in this process only (tests, throwaway runs)."""
        emb = embedder or default_embedder()
        return cls(InProcessBackend(emb.dim), emb, namespace, episodic, values)

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        url: str | None = None,
        namespace: str = "default",
        embedder: Embedder | None = None,
        episodic: EpisodicParams | None = None,
        read_only: bool = False,
        values: ValueParams | None = None,
        replica_limit: int = REPLICA_LIMIT,
        write_batch: int = 1,
        write_batch_s: float = 5.0,
        fit_process: bool = False,
    ) -> MemoryStore:
        """A persistent store: embedded Chroma in directory ``path`` (one writing process),
        or the Chroma server at ``url`` (``http://127.0.0.1:8000``, shared by many processes).
        The writer of an embedded store reads collections of up to ``replica_limit`` records
        from a copy in memory (``memory/replica.py``; 0: every read goes to Chroma) and,
        with ``write_batch`` above 1, journals its writes and sends them to Chroma in
        batches (``memory/journal.py``). ``fit_process``: see ``__init__``.

        Raises ``MemoryLocked`` when another process has ``path`` open for writing;
        ``read_only`` opens it anyway, for looking, and refuses writes.
        """
        if (path is None) == (url is None):
            raise ValueError("MemoryStore.open needs exactly one of path= or url=")
        # Imported here: chromadb takes ~0.6 s to import, in-memory stores never need it.
        from memory.chroma import ChromaBackend

        emb = embedder or default_embedder()
        if path is not None:
            backend = ChromaBackend.embedded(
                path,
                read_only=read_only,
                embedder=emb.name,
                replica_limit=replica_limit,
                write_batch=write_batch,
                write_batch_s=write_batch_s,
            )
        else:
            assert url is not None
            backend = ChromaBackend.server(url, read_only=read_only, embedder=emb.name)
        return cls(
            backend, emb, namespace, episodic, values, fit_process=fit_process and not read_only
        )

    def get(self, memory_id: str) -> MemoryRecord | None:
        for kind in KINDS:
            found = self.backend.get(self._col(kind), [memory_id])
            if found:
                return found[0]
        return None

    def existing(self, memory_ids: Sequence[str], chunk: int = 1000) -> set[str]:
        """Which of ``memory_ids`` this namespace holds (of any kind)."""
        found: set[str] = set()
        ids = list(dict.fromkeys(memory_ids))
        for kind in KINDS:
            for i in range(0, len(ids), chunk):
                found.update(r.id for r in self.backend.get(self._col(kind), ids[i : i + chunk]))
        return found

    def delete(self, memory_id: str) -> bool:
        return any(self.backend.delete(self._col(kind), [memory_id]) for kind in KINDS)

    def delete_episode(self, episode_id: str) -> int:
        """Delete every record episode ``episode_id`` taught or fed (``taught_by``): a
        record several episodes fed is deleted whole. Returns how many."""
        n = 0
        for kind in KINDS:
            ids = [r.id for r in self.taught_by(episode_id, [kind])]
            if ids:
                n += self.backend.delete(self._col(kind), ids)
        return n

    def taught_by(
        self, episode_id: str, kinds: Sequence[MemoryKind] = KINDS
    ) -> Iterator[MemoryRecord]:
        """The records of ``kinds`` whose provenance is episode ``episode_id`` or that it
        fed (``meta.episodes``: an episode memory other episodes were merged into, a mistake
        note or an experience distilled from several), what ``delete_episode`` would delete,
        oldest first within each kind."""
        for kind in kinds:
            for record in self.records(kind):
                if record.provenance.episode_id == episode_id or episode_id in (
                    record.meta.get("episodes") or ()
                ):
                    yield record

    def records(self, kind: MemoryKind) -> Iterator[MemoryRecord]:
        """Every record of one kind in this namespace, oldest first."""
        return self.backend.scan(self._col(kind))

    def nearest(
        self,
        query: str,
        kinds: Sequence[MemoryKind] = KINDS,
        k: int = 5,
        episode: str | None = None,
    ) -> list[tuple[MemoryRecord, float]]:
        """The ``k`` records of ``kinds`` whose keys are most similar to ``query``, with their
        cosine similarity, best first: plain similarity (no Q re-ranking, no exploration, no
        use counted), for inspecting memory rather than acting on it. With ``episode``: among
        the records that episode taught (``taught_by``)."""
        vector = self.embedder.embed([query])[0]
        if episode is not None:
            return _ranked(vector, list(self.taught_by(episode, kinds)), self.embedder, k)
        hits: list[tuple[MemoryRecord, float]] = []
        for kind in kinds:
            hits += self.backend.query(self._col(kind), vector, k)
        hits.sort(key=lambda h: -h[1])
        return hits[:k]

    def export(self) -> Iterator[dict[str, Any]]:
        """Every record of the namespace as a JSON-able dict (with its provenance)."""
        for kind in KINDS:
            for rec in self.records(kind):
                yield rec.model_dump(mode="json")

    def import_records(
        self, rows: Iterable[dict[str, Any] | MemoryRecord], batch: int = 256
    ) -> int:
        """Store exported rows (or records already checked) as they are (same ids, Q,
        counts, provenance; no merging).

        Keys are embedded again with this store's embedder. Returns how many were stored.
        """
        by_kind: dict[MemoryKind, list[MemoryRecord]] = {kind: [] for kind in KINDS}
        n = 0

        def flush(kind: MemoryKind) -> None:
            recs = by_kind[kind]
            if recs:
                vecs = self.embedder.embed([r.key for r in recs])
                self.backend.upsert(self._col(kind), recs, vecs)
                by_kind[kind] = []

        for row in rows:
            rec = row if isinstance(row, MemoryRecord) else MemoryRecord.model_validate(row)
            by_kind[rec.kind].append(rec)
            n += 1
            if len(by_kind[rec.kind]) >= batch:
                flush(rec.kind)
        for kind in KINDS:
            flush(kind)
        return n

    def reset(self) -> None:
        """Delete every memory of this namespace (other namespaces are untouched)."""
        for kind in KINDS:
            self.backend.drop(self._col(kind))

    def stats(self) -> dict[str, int]:
        return {kind: self.backend.count(self._col(kind)) for kind in KINDS}

    def grouped(self) -> AbstractContextManager[None]:
        """A block of writes (an episode's learning) made durable together at its end,
        where the back-end allows (``VectorBackend.grouped``)."""
        return self.backend.grouped()

    def close(self) -> None:
        self.values.close()
        self.backend.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ranked(
    vector: npt.NDArray[np.float32], records: list[MemoryRecord], embedder: Embedder, k: int
) -> list[tuple[MemoryRecord, float]]:
    """``records`` by the cosine similarity of their keys to ``vector``, best first, at most
    ``k`` (the keys embedded again: the same embedder gives the vectors they are stored with)."""
    if not records:
        return []
    keys = np.asarray(embedder.embed([r.key for r in records]), dtype=np.float32)
    norms = np.linalg.norm(keys, axis=1) * float(np.linalg.norm(vector))
    sims = (keys @ np.asarray(vector, dtype=np.float32)) / np.where(norms > 0, norms, 1.0)
    order = np.argsort(-sims, kind="stable")[:k]
    return [(records[i], float(sims[i])) for i in order]
