"""The SQLite checkpointer and the runs table that sits beside it in the same file.

The checkpointer makes a killed episode resumable from its last completed node; the runs
table remembers which episodes a CLI run consists of, so ``--resume RUN_ID`` can finish the
unfinished ones and play the ones not yet started.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import BaseModel

from agent.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evolvent_runs (
    run_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evolvent_episodes (
    thread_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    env TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evolvent_episodes_run ON evolvent_episodes(run_id, idx);
"""


class RunSpec(BaseModel):
    """What a run plays: enough to resume it in another process."""

    env: str
    seed: int
    episodes: int
    max_steps: int
    token_budget: int
    task: str | None = None
    """Free-text task (env ``text``)."""


class EpisodeRow(BaseModel):
    thread_id: str
    run_id: str
    idx: int
    env: str
    seed: int
    status: str
    """``running``, ``finished`` or ``failed``."""
    result: dict[str, Any] | None = None


class RunSummary(BaseModel):
    """A CLI run as ``evolvent runs`` lists it."""

    run_id: str
    created: float
    spec: RunSpec
    finished: int
    """Episodes finished (the others are unfinished or not started)."""

    @property
    def complete(self) -> bool:
        return self.finished >= self.spec.episodes


def list_runs(path: Path, limit: int) -> list[RunSummary]:
    """The CLI runs recorded in the checkpoint database at ``path``, newest first, at most
    ``limit``. Read-only: it creates nothing and works beside an agent that is playing."""
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute(
                "SELECT r.run_id, r.created, r.spec,"
                " (SELECT COUNT(*) FROM evolvent_episodes e"
                "  WHERE e.run_id = r.run_id AND e.status = 'finished')"
                " FROM evolvent_runs r ORDER BY r.created DESC, r.rowid DESC LIMIT ?",
                (limit,),
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as e:
        if "no such table" in str(e):
            return []  # a database no CLI run has written to yet
        raise ConfigError(f"cannot read checkpoint database {path}: {e}") from None
    return [
        RunSummary(
            run_id=run_id, created=created, spec=RunSpec.model_validate_json(spec), finished=n
        )
        for run_id, created, spec, n in rows
    ]


class CheckpointStore:
    """Owns the SQLite connection shared by the checkpointer and the runs table."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        except (OSError, sqlite3.Error) as e:
            raise ConfigError(f"cannot open checkpoint database {path}: {e}") from None
        self.path = path
        # WAL + synchronous=NORMAL: durable across process kills, ~10x cheaper than fsync
        # on every checkpoint.
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()
        with self._lock, self.conn:
            self.conn.executescript(_SCHEMA)
        self.saver = SqliteSaver(self.conn)

    def create_run(self, run_id: str, spec: RunSpec) -> None:
        with self._lock, self.conn:
            self.conn.execute(
                "INSERT INTO evolvent_runs(run_id, created, spec) VALUES (?, ?, ?)",
                (run_id, time.time(), spec.model_dump_json()),
            )

    def get_run(self, run_id: str) -> RunSpec | None:
        with self._lock:
            row = self.conn.execute(
                "SELECT spec FROM evolvent_runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        return RunSpec.model_validate_json(row[0]) if row else None

    def put_episode(self, row: EpisodeRow) -> None:
        with self._lock, self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO evolvent_episodes"
                "(thread_id, run_id, idx, env, seed, status, result, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.thread_id,
                    row.run_id,
                    row.idx,
                    row.env,
                    row.seed,
                    row.status,
                    json.dumps(row.result) if row.result is not None else None,
                    time.time(),
                ),
            )

    def episodes(self, run_id: str) -> list[EpisodeRow]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT thread_id, run_id, idx, env, seed, status, result"
                " FROM evolvent_episodes WHERE run_id = ? ORDER BY idx",
                (run_id,),
            ).fetchall()
        return [_row(r) for r in rows]

    def episode(self, thread_id: str) -> EpisodeRow | None:
        with self._lock:
            r = self.conn.execute(
                "SELECT thread_id, run_id, idx, env, seed, status, result"
                " FROM evolvent_episodes WHERE thread_id = ?",
                (thread_id,),
            ).fetchone()
        return _row(r) if r else None

    def close(self) -> None:
        with self._lock:
            self.conn.close()


def _row(r: tuple[Any, ...]) -> EpisodeRow:
    return EpisodeRow(
        thread_id=r[0],
        run_id=r[1],
        idx=r[2],
        env=r[3],
        seed=r[4],
        status=r[5],
        result=json.loads(r[6]) if r[6] else None,
    )
