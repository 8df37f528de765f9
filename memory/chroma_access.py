"""Our records in Chroma collections: opening them, one operation on one, the raw reads
and writes. ``ChromaBackend`` (``memory/chroma.py``) builds the backend on this: which reads
a copy in memory answers, which writes wait in the journal.

Each backend collection is one Chroma collection in cosine space; we always pass our own
embeddings (Chroma's default embedding function downloads a model). A record is stored whole,
as JSON in one metadata string, so every field round-trips exactly; ``kind`` and
``created_at`` sit beside it as scalars for people browsing the store with Chroma's tools.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, Literal, TypeVar

from agent.errors import EvolventError
from memory.chroma_names import chroma_name, collection_name
from memory.embeddings import Vectors
from memory.records import MemoryRecord
from memory.replica import Row, WriterState

_PAGE = 2_000
_EMBEDDER_KEY = "evolvent:embedder"
# ef_construction 64 instead of Chroma's 100: building the index is most of an add's cost, and
# 64 takes 20-35% less CPU per record (100k on 2 cores: ~1,000 -> ~1,300 records/s) for
# recall@5 0.99-1.00 instead of 1.00 on clustered random 384-d vectors. Fixed when a
# collection is created; existing collections keep theirs.
HNSW: dict[str, Any] = {"space": "cosine", "ef_construction": 64}
T = TypeVar("T")
Hits = list[tuple[MemoryRecord, float]]


def _metadata(rec: MemoryRecord) -> dict[str, str | float]:
    return {
        "record": rec.model_dump_json(),
        "kind": rec.kind,
        "created_at": rec.provenance.created_at,
    }


def _record(meta: Any) -> MemoryRecord:
    return MemoryRecord.model_validate_json(meta["record"])


class ChromaAccess:
    """The collections of one Chroma client (embedded or a server)."""

    def __init__(
        self,
        client: Any,
        location: str,
        *,
        read_only: bool,
        embedder: str | None,
        hnsw: dict[str, Any] | None,
        state: WriterState,
        sole_writer: bool,
    ) -> None:
        """``state``: the remembered counts (kept only when ``sole_writer``: no other
        process writes to the store)."""
        self.client = client
        self.hnsw = {**HNSW, **(hnsw or {}), "space": "cosine"}
        self.location = location
        self.read_only = read_only
        self.embedder = embedder
        self._cols: dict[str, Any] = {}
        self._guard = threading.Lock()
        self._max_batch = int(client.get_max_batch_size())
        self._closed = False
        self._state = state
        self._sole_writer = sole_writer

    def _open(self, name: str, create: bool) -> Any | None:
        """The Chroma collection behind ``name``; None when absent and ``create`` is False."""
        from chromadb.errors import NotFoundError

        if self._closed:
            raise EvolventError(f"memory store {self.location} is closed")
        with self._guard:
            col = self._cols.get(name)
        if col is not None:
            return col
        cname = chroma_name(name)
        if create:
            meta = {_EMBEDDER_KEY: self.embedder} if self.embedder else None
            col = self.client.get_or_create_collection(
                cname,
                configuration={"hnsw": self.hnsw},
                metadata=meta,
                embedding_function=None,
            )
        else:
            try:
                col = self.client.get_collection(cname, embedding_function=None)
            except NotFoundError:
                return None
        theirs = (col.metadata or {}).get(_EMBEDDER_KEY)
        if self.embedder and theirs and theirs != self.embedder:
            raise EvolventError(
                f"memory {name!r} in {self.location} was embedded with {theirs}, not "
                f"{self.embedder}; use the same embedder, another namespace or another store"
            )
        with self._guard:
            self._cols[name] = col
        return col

    def _run(self, name: str, create: bool, op: Callable[[Any], T], empty: T) -> T:
        """``op`` on the collection; ``create``: a write, which creates it if need be."""
        from chromadb.errors import NotFoundError

        if create and self.read_only:
            raise EvolventError(f"memory store {self.location} is open read-only")
        with self._writing(name) if create else nullcontext():
            for attempt in (0, 1):
                col = self._open(name, create)
                if col is None:
                    return empty
                try:
                    return op(col)
                except NotFoundError:
                    # Another client dropped the collection under our cached handle.
                    with self._guard:
                        self._cols.pop(name, None)
                    if attempt:
                        raise
        raise AssertionError("unreachable")

    @contextmanager
    def _writing(self, name: str) -> Iterator[None]:
        """Around a write to ``name``: its count is asked of Chroma again afterwards, and a
        count read while the write ran is not remembered (``count``)."""

        def forget() -> None:
            with self._state.guard:
                self._state.counts.pop(name, None)
                self._state.writes[name] = self._state.writes.get(name, 0) + 1

        forget()
        try:
            yield
        finally:
            forget()

    # -- reads -------------------------------------------------------------------------

    def _chroma_collections(self) -> list[str]:
        names = (collection_name(c.name) for c in self.client.list_collections())
        return sorted(n for n in names if n is not None)

    def _chroma_query_many(self, collection: str, vectors: Vectors, k: int) -> list[Hits]:
        def op(col: Any) -> list[Hits]:
            res = col.query(
                query_embeddings=list(vectors), n_results=k, include=["metadatas", "distances"]
            )
            return [
                [(_record(m), 1.0 - float(d)) for m, d in zip(ms, ds, strict=True)]
                for ms, ds in zip(res["metadatas"], res["distances"], strict=True)
            ]

        return self._run(collection, False, op, [[] for _ in range(len(vectors))])

    def _chroma_get(self, collection: str, ids: Sequence[str]) -> list[MemoryRecord]:
        def op(col: Any) -> list[MemoryRecord]:
            wanted = list(dict.fromkeys(ids))  # Chroma refuses an id asked twice
            res = col.get(ids=wanted, include=["metadatas"])
            by_id = {i: m for i, m in zip(res["ids"], res["metadatas"], strict=True)}
            return [_record(by_id[i]) for i in wanted if i in by_id]

        return self._run(collection, False, op, [])

    def _chroma_scan(self, collection: str) -> Iterator[MemoryRecord]:
        def op(col: Any) -> list[tuple[float, int, str]]:
            rows: list[tuple[float, int, str]] = []
            offset = 0
            while True:
                res = col.get(include=["metadatas"], limit=_PAGE, offset=offset)
                for m in res["metadatas"]:
                    rows.append((float(m["created_at"]), len(rows), str(m["record"])))
                if len(res["ids"]) < _PAGE:
                    return rows
                offset += _PAGE

        # Sorted as raw JSON strings, parsed while yielding: a full scan of a large store
        # holds strings, not a million pydantic objects.
        empty: list[tuple[float, int, str]] = []
        rows = self._run(collection, False, op, empty)
        rows.sort()
        for _, _, raw in rows:
            yield MemoryRecord.model_validate_json(raw)

    def _rows(self, name: str) -> Iterator[Row]:
        """Every record of ``name`` with its embedding, in Chroma's order."""

        def op(col: Any) -> list[Row]:
            rows: list[Row] = []
            offset = 0
            while True:
                res = col.get(include=["embeddings", "metadatas"], limit=_PAGE, offset=offset)
                for m, v in zip(res["metadatas"], res["embeddings"], strict=True):
                    rows.append((_record(m), list(v)))
                if len(res["ids"]) < _PAGE:
                    return rows
                offset += _PAGE

        empty: list[Row] = []
        yield from self._run(name, False, op, empty)

    def _count(self, collection: str) -> int:
        """The count from Chroma, or remembered."""
        # Asked before every read of the step values and for every kind's stats, each
        # episode: a store no one else writes answers from memory until this client writes.
        state = self._state
        with state.guard:
            known = state.counts.get(collection)
            writes = state.writes.get(collection, 0)
        if known is not None:
            return known
        n = self._run(collection, False, lambda col: int(col.count()), 0)
        with state.guard:
            if self._sole_writer and state.writes.get(collection, 0) == writes:
                state.counts[collection] = n
        return n

    # -- writes ------------------------------------------------------------------------

    def _chroma_put(
        self,
        how: Literal["add", "upsert"],
        collection: str,
        records: Sequence[MemoryRecord],
        vectors: Vectors,
    ) -> None:
        def op(col: Any) -> None:
            put = col.add if how == "add" else col.upsert
            for s in range(0, len(records), self._max_batch):
                chunk = records[s : s + self._max_batch]
                put(
                    ids=[r.id for r in chunk],
                    embeddings=vectors[s : s + self._max_batch],
                    metadatas=[_metadata(r) for r in chunk],
                )

        self._run(collection, True, op, None)

    def _chroma_update(self, collection: str, records: Sequence[MemoryRecord]) -> None:
        def op(col: Any) -> None:
            # Chroma's update ignores unknown ids, as the contract asks.
            for s in range(0, len(records), self._max_batch):
                chunk = records[s : s + self._max_batch]
                col.update(ids=[r.id for r in chunk], metadatas=[_metadata(r) for r in chunk])

        self._run(collection, True, op, None)

    def _chroma_delete(self, collection: str, ids: Sequence[str]) -> int:
        def op(col: Any) -> int:
            # Chroma 1.5 reports every requested id as deleted, so count the ones that exist.
            found = col.get(ids=list(dict.fromkeys(ids)), include=[])["ids"]
            if found:
                col.delete(ids=found)
            return len(found)

        with self._writing(collection):  # a write that must not create the collection
            return self._run(collection, False, op, 0)

    def _chroma_drop(self, collection: str) -> bool:
        """Delete the Chroma collection; False when there was none."""
        from chromadb.errors import NotFoundError

        with self._guard:
            self._cols.pop(collection, None)
        with self._writing(collection):
            try:
                self.client.delete_collection(chroma_name(collection))
            except NotFoundError:
                return False
        return True
