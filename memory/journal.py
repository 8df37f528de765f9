"""The writes of an embedded store, journaled at once and sent to Chroma in batches.

A Chroma write costs about 4 ms however few records it carries (its log, a SQLite
transaction, its index), and an agent makes a few small ones per episode (a step-value
record, a Q update, a note). The process that writes an embedded store reads it from its
in-memory copy (``memory/replica.py``), so Chroma only has to have the writes by the time
something reads Chroma itself. So each write is appended to this journal (one line, synced
to disk: as durable as Chroma's own commit, in about 0.15 ms; the writes of one episode's
learning, grouped, are synced once at its end) and applied to the copy, and
the journal's writes go to Chroma together, consecutive ones of a kind and collection in one
call: once ``batch`` writes wait or the oldest has waited ``seconds`` (a timer sends them
then, also when no other write comes), before anything is read from or written to Chroma
directly, and at close. A process that dies leaves its
journal; the next writer to open the store sends it to Chroma first. Processes that open the
store read-only see what Chroma has: at most ``batch`` writes or ``seconds`` behind.

Sending a journal again from its start is harmless: an add of an id that exists leaves it
unchanged, and upserts, updates and deletes land on the same final records.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Literal

import numpy as np

from memory.records import MemoryRecord

JOURNAL_NAME = "evolvent-journal.jsonl"
Op = Literal["add", "upsert", "update", "delete"]


@dataclass
class Entry:
    """One write, as the backend was asked it."""

    op: Op
    collection: str
    records: list[MemoryRecord]
    vectors: np.ndarray | None = None
    ids: list[str] | None = None
    """A delete's ids."""

    def line(self) -> bytes:
        row: dict[str, object] = {"op": self.op, "col": self.collection}
        if self.records:
            row["records"] = [r.model_dump_json() for r in self.records]
        if self.vectors is not None:
            v = np.ascontiguousarray(self.vectors, dtype="<f4")
            row["dim"] = int(v.shape[1])
            row["vectors"] = base64.b64encode(v.tobytes()).decode()
        if self.ids is not None:
            row["ids"] = self.ids
        return json.dumps(row, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Entry:
        row = json.loads(line)
        records = [MemoryRecord.model_validate_json(r) for r in row.get("records", [])]
        vectors = None
        if "vectors" in row:
            raw = np.frombuffer(base64.b64decode(row["vectors"]), dtype="<f4")
            vectors = raw.reshape(-1, int(row["dim"])).astype(np.float32)
        return cls(row["op"], row["col"], records, vectors, row.get("ids"))


@dataclass
class Batch:
    """Consecutive entries of one kind and collection, as one Chroma call."""

    op: Op
    collection: str
    records: list[MemoryRecord]
    vectors: np.ndarray | None
    ids: list[str]


def batches(entries: list[Entry]) -> list[Batch]:
    """``entries`` merged into as few calls as keep their meaning. Collections are
    independent, so each collection's entries go together, in their order (an episode
    writes its step values, then a Q update, then the next episode's step values: one add
    and one update, not one call each). Within a run of adds the first record of an id
    counts (a later add of it changes nothing), within upserts and updates the last, within
    deletes every id once."""
    out: list[Batch] = []
    for col in dict.fromkeys(e.collection for e in entries):
        mine = [e for e in entries if e.collection == col]
        for op, run in groupby(mine, key=lambda e: e.op):
            out.append(_merged(op, col, list(run)))
    return out


def _merged(op: Op, col: str, group: list[Entry]) -> Batch:
    """One call for ``group``, consecutive entries of ``op`` on ``col``."""
    if op == "delete":
        ids = list(dict.fromkeys(i for e in group for i in (e.ids or [])))
        return Batch(op, col, [], None, ids)
    rows: dict[str, tuple[MemoryRecord, np.ndarray | None]] = {}
    for e in group:
        for k, rec in enumerate(e.records):
            if op == "add" and rec.id in rows:
                continue
            rows.pop(rec.id, None)  # an upsert's or update's later row, in its place
            rows[rec.id] = (rec, None if e.vectors is None else e.vectors[k])
    records = [r for r, _ in rows.values()]
    vectors = None if op == "update" else np.stack([v for _, v in rows.values()])  # type: ignore[misc]
    return Batch(op, col, records, vectors, [r.id for r in records])


class WriteJournal:
    """The journal file of one store and the entries not yet in Chroma."""

    def __init__(self, directory: Path, batch: int, seconds: float) -> None:
        self.path = directory / JOURNAL_NAME
        self.batch = batch
        self.seconds = seconds
        self.entries: list[Entry] = []
        self._since = 0.0
        self._fd: int | None = None
        self._unsynced = False
        self._grouping = threading.local()

    def append(self, entry: Entry) -> None:
        """Write ``entry``'s line and sync it to disk, or, inside ``group`` (in this
        thread), when the group ends."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, entry.line())
        if getattr(self._grouping, "depth", 0):
            self._unsynced = True
        else:
            os.fsync(self._fd)
            self._unsynced = False
        if not self.entries:
            self._since = time.monotonic()
        self.entries.append(entry)

    @contextmanager
    def group(self, lock: AbstractContextManager[object]) -> Iterator[None]:
        """The lines this thread appends meanwhile are synced to disk together, once, at
        the end (under ``lock``, the one ``append`` is called under): an episode's writes
        cost one sync, not one each. They are written at once, so a process that dies
        meanwhile leaves them in the journal all the same; only a crash of the machine
        before the end can lose them (``left`` keeps the lines before the first it cannot
        read)."""
        depth = getattr(self._grouping, "depth", 0)
        self._grouping.depth = depth + 1
        try:
            yield
        finally:
            self._grouping.depth = depth
            if depth == 0:
                with lock:
                    self.sync()

    def sync(self) -> None:
        """Sync what was appended without a sync."""
        if self._unsynced and self._fd is not None:
            os.fsync(self._fd)
        self._unsynced = False

    def holds(self, collection: str) -> bool:
        """Whether a write to ``collection`` waits."""
        return any(e.collection == collection for e in self.entries)

    def due(self) -> bool:
        """Whether the waiting writes should go to Chroma now."""
        if not self.entries:
            return False
        waited = time.monotonic() - self._since
        return len(self.entries) >= self.batch or waited >= self.seconds

    def sent(self) -> None:
        """Every entry is in Chroma: the journal starts empty."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
        self.entries, self._unsynced = [], False

    def close(self) -> None:
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def waiting(directory: Path) -> bool:
        """Whether ``directory``'s journal holds anything."""
        try:
            return (directory / JOURNAL_NAME).stat().st_size > 0
        except FileNotFoundError:
            return False

    @staticmethod
    def left(directory: Path) -> list[Entry]:
        """The entries a process left in ``directory``'s journal (a line torn by a crash
        in the middle of its write, necessarily the last, is skipped)."""
        path = directory / JOURNAL_NAME
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        entries: list[Entry] = []
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                entries.append(Entry.parse(line))
            except (ValueError, KeyError):
                break
        return entries

    @staticmethod
    def clear(directory: Path) -> None:
        path = directory / JOURNAL_NAME
        if path.exists():
            with path.open("r+b") as f:
                f.truncate(0)
                f.flush()
                os.fsync(f.fileno())
