"""The Chroma backend: embedded (``PersistentClient``, one writing process) or a Chroma server.

Each backend collection is one Chroma collection in cosine space; we always pass our own
embeddings (Chroma's default embedding function downloads a model). A record is stored whole,
as JSON in one metadata string, so every field round-trips exactly; ``kind`` and
``created_at`` sit beside it as scalars for people browsing the store with Chroma's tools.
"""

from __future__ import annotations

import string
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import numpy as np

from agent.errors import EvolventError
from memory.base import VectorBackend
from memory.embeddings import Vectors
from memory.inprocess import InProcessBackend
from memory.journal import Batch, Entry, WriteJournal, batches
from memory.locking import acquire_write_lock, release_write_lock
from memory.records import MemoryRecord
from memory.replica import REPLICA_LIMIT, Row, WriterState, release, writer_state

PREFIX = "evolvent-"  # not "evolvent.": an escaped first character would make ".."
_KEEP = frozenset(string.ascii_letters + string.digits + "_-")
_HEX = frozenset("0123456789ABCDEF")
_PAGE = 2_000
_EMBEDDER_KEY = "evolvent:embedder"
# ef_construction 64 instead of Chroma's 100: building the index is most of an add's cost, and
# 64 takes 20-35% less CPU per record (100k on 2 cores: ~1,000 -> ~1,300 records/s) for
# recall@5 0.99-1.00 instead of 1.00 on clustered random 384-d vectors. Fixed when a
# collection is created; existing collections keep theirs.
HNSW: dict[str, Any] = {"space": "cosine", "ef_construction": 64}
T = TypeVar("T")


def chroma_name(collection: str) -> str:
    """Our collection name as a valid Chroma name (reversible, see ``collection_name``).

    Chroma wants 3-512 chars of [a-zA-Z0-9._-] that start and end alphanumeric, without "..".
    Other bytes, and a trailing '_' or '-', become ".HH": '.' never appears unescaped, so the
    mapping inverts, and every '.' is followed by a hex digit, so ".." cannot occur.
    """
    if not collection:
        raise ValueError("empty collection name")
    out: list[str] = []
    raw = collection.encode()
    for i, b in enumerate(raw):
        ch = chr(b)
        last = i == len(raw) - 1
        out.append(ch if ch in _KEEP and not (last and ch in "_-") else f".{b:02X}")
    name = PREFIX + "".join(out)
    if len(name) > 512:
        raise ValueError(f"collection name too long for Chroma: {collection!r}")
    return name


def collection_name(chroma: str) -> str | None:
    """The inverse of ``chroma_name``; None for collections that are not ours."""
    if not chroma.startswith(PREFIX):
        return None
    body = chroma[len(PREFIX) :]
    buf = bytearray()
    i = 0
    while i < len(body):
        if body[i] == ".":
            code = body[i + 1 : i + 3]
            if len(code) != 2 or not set(code) <= _HEX:
                return None
            buf.append(int(code, 16))
            i += 3
        else:
            buf.extend(body[i].encode())
            i += 1
    try:
        return buf.decode()
    except UnicodeDecodeError:
        return None


_OPENED: set[Path] = set()
"""Stores Chroma has opened in this process: ``write_ahead_log`` must not touch them."""


def write_ahead_log(db: Path) -> bool:
    """Put Chroma's SQLite file in write-ahead-log mode (creating it if need be); True when
    it is in that mode.

    Chroma leaves SQLite in its default rollback-journal mode: every write is two
    transactions of three or four fsyncs each (journal, file, directory). With a write-ahead
    log a commit appends to the log and syncs it once, as durably: an add or update of one
    record takes about 4.4 ms instead of 5.7. The mode is kept in the file, so Chroma's own
    connections, and readers in other processes, use it.

    Call it under the store's write lock and only before Chroma has opened the file in this
    process: Chroma's SQLite is a library of its own, and POSIX locks belong to the process,
    so closing Python's connection would drop the locks Chroma's connections hold. A file
    that a reader in another process holds open keeps its mode (SQLite refuses the change
    then; the next open tries again)."""
    import sqlite3

    try:
        con = sqlite3.connect(db, timeout=1.0)
    except sqlite3.Error:
        return False
    try:
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
        if mode != "wal":
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        return str(mode).lower() == "wal"
    except sqlite3.Error:
        return False
    finally:
        con.close()


def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


def _metadata(rec: MemoryRecord) -> dict[str, str | float]:
    return {
        "record": rec.model_dump_json(),
        "kind": rec.kind,
        "created_at": rec.provenance.created_at,
    }


def _record(meta: Any) -> MemoryRecord:
    return MemoryRecord.model_validate_json(meta["record"])


class ChromaBackend(VectorBackend):
    """Collections in Chroma; build with ``embedded(path)`` or ``server(url)``."""

    def __init__(
        self,
        client: Any,
        location: str,
        *,
        read_only: bool = False,
        embedder: str | None = None,
        lock_key: str | None = None,
        hnsw: dict[str, Any] | None = None,
        sole_writer: bool = False,
        replica_limit: int = 0,
        write_batch: int = 1,
        write_batch_s: float = 5.0,
    ) -> None:
        """``sole_writer``: no other process writes to this store while this one holds its
        write lock (``lock_key``; an embedded store), so counts are remembered, and
        collections of up to ``replica_limit`` records are read from a copy kept in this
        process (``memory/replica.py``), both shared with the other backends this process
        has open on the store. With a copy, ``write_batch`` above 1 journals the writes and
        sends them to Chroma in batches of up to that many, or after ``write_batch_s``
        seconds (``memory/journal.py``)."""
        self.client = client
        self.hnsw = {**HNSW, **(hnsw or {}), "space": "cosine"}
        self.location = location
        self.read_only = read_only
        self.embedder = embedder
        self._lock_key = lock_key
        self._cols: dict[str, Any] = {}
        self._guard = threading.Lock()
        self._max_batch = int(client.get_max_batch_size())
        self._closed = False
        self._sole_writer = sole_writer and not read_only and lock_key is not None
        self._reads_copy = self._sole_writer and replica_limit > 0
        self._state = (
            writer_state(lock_key, replica_limit)
            if self._sole_writer and lock_key is not None
            else WriterState()
        )
        """Counts, read copy, journal and write order: shared with every backend writing this
        store in this process (``memory/replica.py``); a server's or reader's own."""
        self._defers = self._reads_copy and write_batch > 1
        if self._defers and self._state.journal is None:
            self._state.journal = WriteJournal(Path(location), write_batch, write_batch_s)

    @classmethod
    def embedded(
        cls,
        path: str | Path,
        *,
        read_only: bool = False,
        embedder: str | None = None,
        hnsw: dict[str, Any] | None = None,
        replica_limit: int = REPLICA_LIMIT,
        write_batch: int = 1,
        write_batch_s: float = 5.0,
    ) -> ChromaBackend:
        """A store in directory ``path``, written by this process only.

        ``read_only`` skips the write lock (for listing while an agent runs) and refuses writes;
        it sees what the writer had committed when each collection was first opened. A
        writer reads collections of up to ``replica_limit`` records from a copy in memory
        (0: every read goes to Chroma), and with ``write_batch`` above 1 journals its writes
        to them and sends them to Chroma in batches. The first writer to open the store in a
        process sends Chroma what a journal left by a process that died holds.
        """
        import chromadb

        p = Path(path).expanduser()
        if read_only and not (p / "chroma.sqlite3").exists():
            raise EvolventError(f"no memory store at {p}")
        p.mkdir(parents=True, exist_ok=True)
        key = None if read_only else acquire_write_lock(p)
        try:
            real = p.resolve()
            if key is not None and real not in _OPENED:
                write_ahead_log(p / "chroma.sqlite3")
            _OPENED.add(real)
            client = chromadb.PersistentClient(path=str(p), settings=_settings())
        except Exception:
            if key is not None:
                release_write_lock(key)
            raise
        backend = cls(
            client,
            str(p),
            read_only=read_only,
            embedder=embedder,
            lock_key=key,
            hnsw=hnsw,
            sole_writer=True,
            replica_limit=replica_limit,
            write_batch=write_batch,
            write_batch_s=write_batch_s,
        )
        if backend._sole_writer and backend._state.users == 1:
            try:
                backend._recover()
            except BaseException:
                backend.close()
                raise
        return backend

    @classmethod
    def server(
        cls,
        url: str,
        *,
        read_only: bool = False,
        embedder: str | None = None,
        hnsw: dict[str, Any] | None = None,
    ) -> ChromaBackend:
        """A Chroma server (``chroma run --path DIR --port 8000``) shared by many processes."""
        import chromadb

        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EvolventError(f"bad Chroma server URL {url!r}; expected http://HOST:PORT")
        ssl = parts.scheme == "https"
        port = parts.port or (443 if ssl else 8000)
        try:
            client = chromadb.HttpClient(
                host=parts.hostname, port=port, ssl=ssl, settings=_settings()
            )
        except ValueError as e:  # chromadb's "Could not connect to a Chroma server"
            raise EvolventError(
                f"cannot reach the Chroma server at {url} ({e}); start it with "
                "`chroma run --path DIR --port 8000` or fix EVOLVENT_MEMORY__URL"
            ) from None
        return cls(client, url, read_only=read_only, embedder=embedder, hnsw=hnsw)

    # -- collections ---------------------------------------------------------------------

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

    def collections(self) -> list[str]:
        """Names of our collections in this store."""
        self._send_journal()  # a journaled add may create one
        names = (collection_name(c.name) for c in self.client.list_collections())
        return sorted(n for n in names if n is not None)

    def drop(self, collection: str) -> bool:
        from chromadb.errors import NotFoundError

        if self.read_only:
            raise EvolventError(f"memory store {self.location} is open read-only")
        with self._state.lock:
            self._send_journal()
            held = self._count(collection) > 0
            with self._guard:
                self._cols.pop(collection, None)
            self._state.replica.forget(collection)
            with self._writing(collection):
                try:
                    self.client.delete_collection(chroma_name(collection))
                except NotFoundError:
                    return False
            return held

    # -- the copy read in place of Chroma ------------------------------------------------

    def _copied(self, name: str) -> bool:
        """Whether reads of ``name`` come from the replica (loaded on the first read)."""
        if not self._reads_copy:
            return False
        replica = self._state.replica
        held = replica.held(name)
        if held is None:
            with self._state.lock:
                held = replica.held(name)
                if held is None:
                    journal = self._state.journal
                    if journal is not None and journal.holds(name):
                        self._send_journal()  # Chroma must have them before it is read
                    held = replica.load(name, self._count(name), lambda: self._rows(name))
        return held

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

    def _write(self, name: str, chroma: Callable[[], T], copy: Callable[[Any], object]) -> T:
        """A write to Chroma (``chroma``), then the same write to the collection's copy."""
        with self._state.lock:
            self._send_journal()  # the journal's writes came first
            try:
                out = chroma()
            except BaseException:
                self._state.replica.forget(name)
                raise
            self._state.replica.apply(name, copy)
            return out

    @property
    def _copy(self) -> InProcessBackend:
        return self._state.replica.copy

    # -- the journal: writes sent to Chroma in batches -------------------------------------

    def _journaled(self, entry: Entry, copy: Callable[[InProcessBackend], object]) -> bool:
        """Apply ``entry`` to the copy and journal it, when this backend defers writes to a
        copied collection; False when the caller must write to Chroma now."""
        if not self._defers or not self._copied(entry.collection):
            return False
        state = self._state
        journal = state.journal
        assert journal is not None
        with state.lock:
            if not state.replica.held(entry.collection):  # let go meanwhile
                return False
            try:
                copy(state.replica.copy)
                journal.append(entry)
            except BaseException:
                state.replica.forget(entry.collection)  # loaded again from what was sent
                raise
            state.replica.trim(entry.collection)
            if journal.due():
                self._send_journal()
        return True

    def _send_journal(self) -> None:
        """Send Chroma every journaled write, before anything reads or writes it directly."""
        journal = self._state.journal
        if journal is None or not journal.entries:
            return
        with self._state.lock:
            if not journal.entries:
                return
            waiting = len(journal.entries)
            try:
                for b in batches(journal.entries):
                    self._send(b)
            except Exception as e:
                raise EvolventError(
                    f"memory store {self.location}: sending {waiting} journaled writes to "
                    f"Chroma failed ({e}); they stay in {journal.path} and are sent again "
                    "on the next write, at close, or when the store is next opened"
                ) from e
            journal.sent()

    def _recover(self) -> None:
        """Send Chroma the writes a process that died left in the store's journal."""
        left = WriteJournal.left(Path(self.location))
        try:
            for b in batches(left):
                self._send(b)
        except Exception as e:
            raise EvolventError(
                f"memory store {self.location}: the journal a previous process left holds "
                f"{len(left)} writes, and sending them to Chroma failed ({e})"
            ) from e
        WriteJournal.clear(Path(self.location))

    def _send(self, b: Batch) -> None:
        if b.op == "add":
            assert b.vectors is not None
            self._chroma_put("add", b.collection, b.records, b.vectors)
        elif b.op == "upsert":
            assert b.vectors is not None
            self._chroma_put("upsert", b.collection, b.records, b.vectors)
        elif b.op == "update":
            self._chroma_update(b.collection, b.records)
        else:
            self._chroma_delete(b.collection, b.ids)

    # -- primitives ----------------------------------------------------------------------

    def upsert(self, collection: str, records: Sequence[MemoryRecord], vectors: Vectors) -> None:
        self._put("upsert", collection, records, vectors)

    def add(self, collection: str, records: Sequence[MemoryRecord], vectors: Vectors) -> None:
        # Chroma's add skips the per-id lookup of upsert: about 1.3-2x the records/s.
        self._put("add", collection, records, vectors)

    def _put(
        self,
        how: Literal["add", "upsert"],
        collection: str,
        records: Sequence[MemoryRecord],
        vectors: Vectors,
    ) -> None:
        if len(records) != len(vectors):
            raise ValueError("records and vectors differ in length")
        if not records:
            return
        if self.read_only:
            raise EvolventError(f"memory store {self.location} is open read-only")
        rows = np.asarray(vectors, dtype=np.float32)
        entry = Entry(how, collection, list(records), rows)
        if how == "add":
            done = self._journaled(entry, lambda c: c.add(collection, records, rows))
        else:
            done = self._journaled(entry, lambda c: c.upsert(collection, records, rows))
        if done:
            return
        self._write(
            collection,
            lambda: self._chroma_put(how, collection, records, vectors),
            lambda c: getattr(c, how)(collection, records, rows),
        )

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

    def update(self, collection: str, records: Sequence[MemoryRecord]) -> None:
        if not records:
            return
        if self.read_only:
            raise EvolventError(f"memory store {self.location} is open read-only")
        entry = Entry("update", collection, list(records))
        if self._journaled(entry, lambda c: c.update(collection, records)):
            return
        self._write(
            collection,
            lambda: self._chroma_update(collection, records),
            lambda c: c.update(collection, records),
        )

    def _chroma_update(self, collection: str, records: Sequence[MemoryRecord]) -> None:
        def op(col: Any) -> None:
            # Chroma's update ignores unknown ids, as the contract asks.
            for s in range(0, len(records), self._max_batch):
                chunk = records[s : s + self._max_batch]
                col.update(ids=[r.id for r in chunk], metadatas=[_metadata(r) for r in chunk])

        self._run(collection, True, op, None)

    def query(self, collection: str, vector: Vectors, k: int) -> list[tuple[MemoryRecord, float]]:
        def op(col: Any) -> list[tuple[MemoryRecord, float]]:
            res = col.query(
                query_embeddings=[vector], n_results=k, include=["metadatas", "distances"]
            )
            return [
                (_record(m), 1.0 - float(d))
                for m, d in zip(res["metadatas"][0], res["distances"][0], strict=True)
            ]

        if k <= 0:
            return []
        if self._copied(collection):
            return self._copy.query(collection, vector, k)
        self._send_journal()
        return self._run(collection, False, op, [])

    def query_many(
        self, collection: str, vectors: Vectors, k: int
    ) -> list[list[tuple[MemoryRecord, float]]]:
        def op(col: Any) -> list[list[tuple[MemoryRecord, float]]]:
            res = col.query(
                query_embeddings=list(vectors), n_results=k, include=["metadatas", "distances"]
            )
            return [
                [(_record(m), 1.0 - float(d)) for m, d in zip(ms, ds, strict=True)]
                for ms, ds in zip(res["metadatas"], res["distances"], strict=True)
            ]

        if k <= 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        if self._copied(collection):
            return self._copy.query_many(collection, vectors, k)
        self._send_journal()
        return self._run(collection, False, op, [[] for _ in range(len(vectors))])

    def get(self, collection: str, ids: Sequence[str]) -> list[MemoryRecord]:
        def op(col: Any) -> list[MemoryRecord]:
            wanted = list(dict.fromkeys(ids))  # Chroma refuses an id asked twice
            res = col.get(ids=wanted, include=["metadatas"])
            by_id = {i: m for i, m in zip(res["ids"], res["metadatas"], strict=True)}
            return [_record(by_id[i]) for i in wanted if i in by_id]

        if not ids:
            return []
        if self._copied(collection):
            return self._copy.get(collection, ids)
        self._send_journal()
        return self._run(collection, False, op, [])

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        if self.read_only:
            raise EvolventError(f"memory store {self.location} is open read-only")
        wanted = list(dict.fromkeys(ids))
        if self._defers and self._copied(collection):
            gone = [0]

            def copy(c: InProcessBackend) -> None:
                gone[0] = c.delete(collection, wanted)

            if self._journaled(Entry("delete", collection, [], ids=wanted), copy):
                return gone[0]
        return self._write(
            collection,
            lambda: self._chroma_delete(collection, wanted),
            lambda c: c.delete(collection, wanted),
        )

    def _chroma_delete(self, collection: str, ids: Sequence[str]) -> int:
        def op(col: Any) -> int:
            # Chroma 1.5 reports every requested id as deleted, so count the ones that exist.
            found = col.get(ids=list(dict.fromkeys(ids)), include=[])["ids"]
            if found:
                col.delete(ids=found)
            return len(found)

        with self._writing(collection):  # a write that must not create the collection
            return self._run(collection, False, op, 0)

    def scan(self, collection: str) -> Iterator[MemoryRecord]:
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

        if self._copied(collection):
            yield from self._copy.scan(collection)
            return
        self._send_journal()
        # Sorted as raw JSON strings, parsed while yielding: a full scan of a large store
        # holds strings, not a million pydantic objects.
        empty: list[tuple[float, int, str]] = []
        rows = self._run(collection, False, op, empty)
        rows.sort()
        for _, _, raw in rows:
            yield MemoryRecord.model_validate_json(raw)

    def count(self, collection: str) -> int:
        if self._copied(collection):
            return self._copy.count(collection)
        self._send_journal()
        return self._count(collection)

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

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._send_journal()
        finally:
            self._closed = True
            self._cols.clear()
            if self._sole_writer and self._lock_key is not None:
                release(self._lock_key)
        close = getattr(self.client, "close", None)
        if close is not None:
            close()
        if self._lock_key is not None:
            release_write_lock(self._lock_key)
            self._lock_key = None
