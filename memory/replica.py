"""A read copy of an embedded store's collections, kept by the process that writes the store.

An embedded store has one writing process (its write lock), and every write of that process
goes through its ``ChromaBackend``. So the backend can keep a copy of each collection in an
``InProcessBackend``: loaded from Chroma when the collection is first read, then given
every write right after Chroma has taken it (or, when writes are journaled and sent to
Chroma later, ``memory/journal.py``, as the journal takes it). Reads are answered from the
copy: a query of a
small collection takes tens of microseconds there, against about a millisecond through
Chroma, and a count or a get no longer crosses into Chroma at all. The search over the
copy is exact (one matrix-vector product), where Chroma's index is approximate; on the
small collections the copy is kept for they find the same records.

A collection past ``limit`` records is not copied (the exact search grows with it, and so
does the memory held); its reads go to Chroma. A write that fails, or a copy that fails to
take one, drops the collection's copy, which is loaded again on the next read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress

import numpy as np

from memory.inprocess import InProcessBackend
from memory.journal import WriteJournal
from memory.records import MemoryRecord

Row = tuple[MemoryRecord, list[float]]

REPLICA_LIMIT = 5_000
"""Records a collection may hold and still be copied: a query of 5,000 384-d vectors takes
about 0.3 ms, a Chroma query about 1 ms."""


class Replica:
    """The copies of one store's collections. The caller orders writes and loads (the
    store's write lock); the guard here makes each read see a copy whole: never one let go,
    or half given a write, while it reads."""

    def __init__(self, limit: int = REPLICA_LIMIT) -> None:
        self.limit = limit
        self.copy = InProcessBackend(dim=0)
        self._held: dict[str, bool] = {}
        """Collection -> copied (True) or too large to copy (False); absent: not loaded."""
        self._guard = threading.RLock()

    def held(self, name: str) -> bool | None:
        """Whether reads of ``name`` come from the copy; None until it is loaded."""
        with self._guard:
            return self._held.get(name)

    @contextmanager
    def reading(self, name: str) -> Iterator[InProcessBackend | None]:
        """The copy to read ``name`` from, unchanged until the block ends; None when
        ``name`` is not held (let go since it was checked: read Chroma instead)."""
        with self._guard:
            yield self.copy if self._held.get(name) else None

    def load(self, name: str, count: int, rows: Callable[[], Iterable[Row]]) -> bool:
        """Take ``name``'s records, if ``count`` is within the limit; returns ``held``."""
        keep = count <= self.limit
        records: list[MemoryRecord] = []
        vectors: list[list[float]] = []
        if keep:
            for rec, vec in rows():
                records.append(rec)
                vectors.append(vec)
        with self._guard:
            self.copy.drop(name)
            if records:
                self.copy.upsert(name, records, np.asarray(vectors, dtype=np.float32))
            self._held[name] = keep
        return keep

    def take(self, name: str, write: Callable[[InProcessBackend], object]) -> bool:
        """Give the copy of ``name`` a write; False when ``name`` is not held. Past the
        limit the copy is let go; a write the copy refuses drops it and is raised."""
        with self._guard:
            if not self._held.get(name):
                return False
            try:
                write(self.copy)
            except BaseException:
                self.forget(name)
                raise
            if self.copy.count(name) > self.limit:
                self.copy.drop(name)
                self._held[name] = False
            return True

    def apply(self, name: str, write: Callable[[InProcessBackend], object]) -> None:
        """Give the copy a write Chroma has taken."""
        with suppress(Exception):  # the copy was dropped: it is loaded from Chroma again
            self.take(name, write)

    def forget(self, name: str) -> None:
        """Drop ``name``'s copy; the next read loads it again."""
        with self._guard:
            self._held.pop(name, None)
            self.copy.drop(name)

    def clear(self) -> None:
        with self._guard:
            self._held.clear()
            self.copy = InProcessBackend(dim=0)


class WriterState:
    """What every backend writing one embedded store in this process shares.

    The store's write lock admits one process, but inside it several backends may be open on
    the same path (the lock is counted per process, and Chroma shares one client per path).
    What one of them writes must show in the remembered counts and in the read copy of all
    of them, so those live here, one per store, with the lock that orders the writes.
    """

    def __init__(self, limit: int = 0) -> None:
        self.replica = Replica(limit)
        self.lock = threading.RLock()
        """Held by each write and each load of a copy: Chroma and the copy take writes in
        the same order, and a copy is loaded with no write half done."""
        self.guard = threading.Lock()
        self.counts: dict[str, int] = {}
        """Collection -> its count, while no write to it has begun since it was read."""
        self.writes: dict[str, int] = {}
        """Collection -> writes begun or ended, so a count read across one is not kept."""
        self.users = 0
        self.journal: WriteJournal | None = None
        """Writes waiting to go to Chroma (``memory/journal.py``), when batched."""


_STATES: dict[str, WriterState] = {}
_STATES_GUARD = threading.Lock()


def writer_state(key: str, limit: int) -> WriterState:
    """The shared state of the store ``key`` (its real path); pair with ``release``."""
    with _STATES_GUARD:
        state = _STATES.get(key)
        if state is None:
            state = _STATES[key] = WriterState(limit)
        state.replica.limit = max(state.replica.limit, limit)
        state.users += 1
        return state


def release(key: str) -> None:
    """One backend of store ``key`` closed; the last one's close lets the state go."""
    with _STATES_GUARD:
        state = _STATES.get(key)
        if state is None:
            return
        state.users -= 1
        if state.users <= 0:
            del _STATES[key]
            state.replica.clear()
            if state.journal is not None:
                with state.lock:  # not while a timer's send is truncating it
                    state.journal.close()
