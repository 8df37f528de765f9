"""The Chroma backend: embedded (``PersistentClient``, one writing process) or a Chroma server.

How records sit in Chroma, and the raw operations, are in ``memory/chroma_access.py``. This
module decides where each operation goes: the writer of an embedded store reads small
collections from a copy in memory (``memory/replica.py``) and can journal its writes and
send them to Chroma in batches (``memory/journal.py``); everything else goes to Chroma.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np

from agent.errors import EvolventError, MemoryLocked
from memory.base import VectorBackend
from memory.chroma_access import ChromaAccess, T
from memory.embeddings import Vectors
from memory.inprocess import InProcessBackend
from memory.journal import Batch, Entry, WriteJournal, batches
from memory.locking import acquire_write_lock, release_write_lock
from memory.records import MemoryRecord
from memory.replica import REPLICA_LIMIT, WriterState, release, writer_state
from memory.sqlite_wal import OPENED, write_ahead_log

_log = logging.getLogger(__name__)


def _valid_ids(records: Sequence[MemoryRecord]) -> None:
    if any(not r.id for r in records):
        raise ValueError("a record id must have at least one character")


def _settings() -> Any:
    from chromadb.config import Settings

    return Settings(anonymized_telemetry=False)


class ChromaBackend(ChromaAccess, VectorBackend):
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
        sole = sole_writer and not read_only and lock_key is not None
        # Counts, read copy, journal and write order: shared with every backend writing this
        # store in this process (memory/replica.py); a server's or reader's own.
        state = writer_state(lock_key, replica_limit) if sole and lock_key else WriterState()
        super().__init__(
            client,
            location,
            read_only=read_only,
            embedder=embedder,
            hnsw=hnsw,
            state=state,
            sole_writer=sole,
        )
        self._lock_key = lock_key
        self._reads_copy = sole and replica_limit > 0
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
        process sends Chroma what a journal left by a process that died holds; so does a
        reader, when no writer has the store open.
        """
        import chromadb

        p = Path(path).expanduser()
        if read_only and not (p / "chroma.sqlite3").exists():
            raise EvolventError(f"no memory store at {p}")
        if read_only and WriteJournal.waiting(p):
            # Writes journaled by a writer that is gone: send them first, as the next writer
            # would (SQLite's readers roll back a hot journal too). A live writer's journal
            # is its own to send; this reader then sees Chroma, up to a batch behind.
            # A reader that cannot write there (permissions, a failing send) reads anyway.
            with suppress(MemoryLocked, EvolventError, OSError):
                cls.embedded(p, embedder=embedder, hnsw=hnsw, replica_limit=0).close()
        p.mkdir(parents=True, exist_ok=True)
        key = None if read_only else acquire_write_lock(p)
        try:
            real = p.resolve()
            if key is not None and real not in OPENED:
                write_ahead_log(p / "chroma.sqlite3")
            OPENED.add(real)
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

    def collections(self) -> list[str]:
        """Names of our collections in this store."""
        self._send_journal()  # a journaled add may create one
        return self._chroma_collections()

    def drop(self, collection: str) -> bool:
        if self.read_only:
            raise EvolventError(f"memory store {self.location} is open read-only")
        with self._state.lock:
            self._send_journal()
            held = self._count(collection) > 0
            self._state.replica.forget(collection)
            return self._chroma_drop(collection) and held

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

    def _from_copy(self, name: str, read: Callable[[InProcessBackend], T]) -> T | None:
        """``read`` of the copy of ``name``; None when the caller must read Chroma (and then
        the journal has been sent, so Chroma has every write)."""
        if self._copied(name):
            with self._state.replica.reading(name) as copy:
                if copy is not None:
                    return read(copy)
        self._send_journal()
        return None

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

    # -- the journal: writes sent to Chroma in batches -------------------------------------

    def grouped(self) -> AbstractContextManager[None]:
        """The journaled writes of this thread meanwhile are synced to disk once, at the
        end (``WriteJournal.group``); without a journal each write is durable when made."""
        journal = self._state.journal if self._defers else None
        return nullcontext() if journal is None else journal.group(self._state.lock)

    def _journaled(self, entry: Entry, copy: Callable[[InProcessBackend], object]) -> bool:
        """Apply ``entry`` to the copy and journal it, when this backend defers writes to a
        copied collection; False when the caller must write to Chroma now."""
        if not self._defers or not self._copied(entry.collection):
            return False
        state = self._state
        journal = state.journal
        assert journal is not None
        with state.lock:
            first = not journal.entries
            if not state.replica.take(entry.collection, copy):  # let go meanwhile
                return False
            try:
                journal.append(entry)
            except BaseException:
                state.replica.forget(entry.collection)  # loaded again from what was sent
                raise
            if journal.due():
                self._send_journal()
            elif first:
                # Sent after write_batch_s even if no other write comes (an idle service),
                # so readers in other processes are never further behind.
                timer = threading.Timer(journal.seconds, self._send_when_due)
                timer.daemon = True
                timer.start()
        return True

    def _send_when_due(self) -> None:
        journal = self._state.journal
        if journal is None or not journal.due():
            return
        try:
            self._send_journal()
        except EvolventError as e:  # sent again on the next write, at close, or next open
            _log.warning("%s", e)

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
        if not left:  # the usual open: nothing to send, no file to truncate and sync
            return
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
        if b.op == "add" or b.op == "upsert":
            assert b.vectors is not None
            self._chroma_put(b.op, b.collection, b.records, b.vectors)
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
        # What Chroma would refuse is refused now: a journaled write reaches it later.
        _valid_ids(records)
        if not np.isfinite(rows).all():
            raise ValueError("embeddings must not contain NaN or infinity")

        def copy(c: InProcessBackend) -> None:
            getattr(c, how)(collection, records, rows)

        if self._journaled(Entry(how, collection, list(records), rows), copy):
            return
        self._write(collection, lambda: self._chroma_put(how, collection, records, rows), copy)

    def update(self, collection: str, records: Sequence[MemoryRecord]) -> None:
        if not records:
            return
        if self.read_only:
            raise EvolventError(f"memory store {self.location} is open read-only")
        _valid_ids(records)

        def copy(c: InProcessBackend) -> None:
            c.update(collection, records)

        if self._journaled(Entry("update", collection, list(records)), copy):
            return
        self._write(collection, lambda: self._chroma_update(collection, records), copy)

    def query(self, collection: str, vector: Vectors, k: int) -> list[tuple[MemoryRecord, float]]:
        if k <= 0:
            return []
        found = self._from_copy(collection, lambda c: c.query(collection, vector, k))
        if found is not None:
            return found
        return self._chroma_query_many(collection, np.asarray(vector).reshape(1, -1), k)[0]

    def query_many(
        self, collection: str, vectors: Vectors, k: int
    ) -> list[list[tuple[MemoryRecord, float]]]:
        if k <= 0 or len(vectors) == 0:
            return [[] for _ in range(len(vectors))]
        found = self._from_copy(collection, lambda c: c.query_many(collection, vectors, k))
        if found is not None:
            return found
        return self._chroma_query_many(collection, vectors, k)

    def get(self, collection: str, ids: Sequence[str]) -> list[MemoryRecord]:
        if not ids:
            return []
        found = self._from_copy(collection, lambda c: c.get(collection, ids))
        if found is not None:
            return found
        return self._chroma_get(collection, ids)

    def delete(self, collection: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        if self.read_only:
            raise EvolventError(f"memory store {self.location} is open read-only")
        wanted = list(dict.fromkeys(ids))
        gone = [0]  # what the copy deleted, when the journal takes the delete

        def copy(c: InProcessBackend) -> None:
            gone[0] = c.delete(collection, wanted)

        if self._journaled(Entry("delete", collection, [], ids=wanted), copy):
            return gone[0]
        return self._write(collection, lambda: self._chroma_delete(collection, wanted), copy)

    def scan(self, collection: str) -> Iterator[MemoryRecord]:
        found = self._from_copy(collection, lambda c: list(c.scan(collection)))
        yield from self._chroma_scan(collection) if found is None else found

    def count(self, collection: str) -> int:
        found = self._from_copy(collection, lambda c: c.count(collection))
        return self._count(collection) if found is None else found

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
