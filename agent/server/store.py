"""The server's runs and their step events, in SQLite beside the LangGraph checkpoints.

A run row says who owns it (namespace), what it plays and where it stands; its events are
the ``StepView``s in trajectory order, so an event stream can be replayed after a reconnect
or a server restart. The checkpoints themselves stay in the checkpointer's tables.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evolvent_server_runs (
    id TEXT PRIMARY KEY,
    namespace TEXT NOT NULL,
    status TEXT NOT NULL,
    env TEXT NOT NULL,
    task TEXT,
    seed INTEGER NOT NULL,
    max_steps INTEGER NOT NULL,
    token_budget INTEGER NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    events INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT
);
CREATE INDEX IF NOT EXISTS evolvent_server_runs_ns ON evolvent_server_runs(namespace, created);
CREATE TABLE IF NOT EXISTS evolvent_server_events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
"""
_COLUMNS = (
    "id, namespace, status, env, task, seed, max_steps, token_budget, created, started, "
    "finished, events, cancel_requested, error, result"
)


def new_run_id() -> str:
    return f"run-{uuid.uuid4().hex}"


class RunRow(BaseModel):
    id: str
    namespace: str
    status: str
    env: str
    task: str | None
    seed: int
    max_steps: int
    token_budget: int
    created: float
    started: float | None = None
    finished: float | None = None
    events: int = 0
    cancel_requested: bool = False
    error: str | None = None
    result: dict[str, Any] | None = None


class RunStore:
    """Thread-safe access to the runs and events tables (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"cannot open the run database {path}: {e}") from None
        self.path = path
        self._lock = threading.Lock()
        with self._lock, self.conn:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(_SCHEMA)
        # Reads get a connection per thread: in WAL mode they never wait for a writer, so a
        # GET does not queue behind the step events and checkpoints that runs are writing.
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise sqlite3.ProgrammingError("the run store is closed")
            conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def insert(self, row: RunRow) -> None:
        with self._lock, self.conn:
            self.conn.execute(
                f"INSERT INTO evolvent_server_runs({_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                _values(row),
            )

    def get(self, run_id: str, namespace: str | None = None) -> RunRow | None:
        """The run; None when absent or, with ``namespace``, owned by another namespace."""
        sql = f"SELECT {_COLUMNS} FROM evolvent_server_runs WHERE id = ?"
        args: tuple[Any, ...] = (run_id,)
        if namespace is not None:
            sql += " AND namespace = ?"
            args = (run_id, namespace)
        r = self._reader().execute(sql, args).fetchone()
        return _row(r) if r else None

    def list_runs(
        self, namespace: str, status: str | None, limit: int, offset: int
    ) -> list[RunRow]:
        sql = f"SELECT {_COLUMNS} FROM evolvent_server_runs WHERE namespace = ?"
        args: list[Any] = [namespace]
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        sql += " ORDER BY created DESC, id LIMIT ? OFFSET ?"
        args += [limit, offset]
        rows = self._reader().execute(sql, args).fetchall()
        return [_row(r) for r in rows]

    def update(self, run_id: str, **fields: Any) -> None:
        if "result" in fields and fields["result"] is not None:
            fields["result"] = json.dumps(fields["result"])
        if "cancel_requested" in fields:
            fields["cancel_requested"] = int(fields["cancel_requested"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._lock, self.conn:
            self.conn.execute(
                f"UPDATE evolvent_server_runs SET {sets} WHERE id = ?", (*fields.values(), run_id)
            )

    def mark_interrupted(self) -> int:
        """At startup: runs that were queued or running when the last process died."""
        with self._lock, self.conn:
            cur = self.conn.execute(
                "UPDATE evolvent_server_runs SET status = 'interrupted', cancel_requested = 0"
                " WHERE status IN ('queued', 'running')"
            )
        return cur.rowcount

    def put_event(self, run_id: str, seq: int, data: str) -> None:
        """Record event ``seq`` (replacing a stale one from before a restart)."""
        with self._lock, self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO evolvent_server_events(run_id, seq, data) VALUES (?, ?, ?)",
                (run_id, seq, data),
            )
            self.conn.execute(
                "UPDATE evolvent_server_runs SET events = MAX(events, ?) WHERE id = ?",
                (seq + 1, run_id),
            )

    def replace_events(self, run_id: str, events: Sequence[str]) -> None:
        """Make the events exactly the final trajectory (steps re-run after a restart may
        differ from what a dead process had emitted)."""
        with self._lock, self.conn:
            self.conn.execute(
                "DELETE FROM evolvent_server_events WHERE run_id = ? AND seq >= ?",
                (run_id, len(events)),
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO evolvent_server_events(run_id, seq, data) VALUES (?, ?, ?)",
                [(run_id, i, d) for i, d in enumerate(events)],
            )
            self.conn.execute(
                "UPDATE evolvent_server_runs SET events = ? WHERE id = ?", (len(events), run_id)
            )

    def events(self, run_id: str, after: int, limit: int = 1000) -> list[tuple[int, str]]:
        rows = (
            self._reader()
            .execute(
                "SELECT seq, data FROM evolvent_server_events WHERE run_id = ? AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (run_id, after, limit),
            )
            .fetchall()
        )
        return [(int(s), str(d)) for s, d in rows]

    def ping(self) -> None:
        self._reader().execute("SELECT 1 FROM evolvent_server_runs LIMIT 1").fetchall()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in [self.conn, *self._readers]:
                conn.close()
            self._readers.clear()


def _values(row: RunRow) -> tuple[Any, ...]:
    return (
        row.id,
        row.namespace,
        row.status,
        row.env,
        row.task,
        row.seed,
        row.max_steps,
        row.token_budget,
        row.created or time.time(),
        row.started,
        row.finished,
        row.events,
        int(row.cancel_requested),
        row.error,
        json.dumps(row.result) if row.result is not None else None,
    )


def _row(r: Sequence[Any]) -> RunRow:
    return RunRow(
        id=r[0],
        namespace=r[1],
        status=r[2],
        env=r[3],
        task=r[4],
        seed=r[5],
        max_steps=r[6],
        token_budget=r[7],
        created=r[8],
        started=r[9],
        finished=r[10],
        events=r[11],
        cancel_requested=bool(r[12]),
        error=r[13],
        result=json.loads(r[14]) if r[14] else None,
    )
