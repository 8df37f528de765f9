"""A tool registry persisted in one SQLite file beside memory (``<memory.path>/tools.sqlite``).

Tools, every replaced version, and the trajectories the miner learns from are rows keyed by
namespace. A doc's embedding is stored as a float32 blob and retrieval is a brute-force
cosine over the active tools of the namespace (fine for hundreds of tools). Several
processes may share the file: writes are ``BEGIN IMMEDIATE`` transactions in WAL mode.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt

from agent.errors import EvolventError
from memory.embeddings import Embedder
from toolsmith.models import Tool, ToolStatus, Trajectory, check_status
from toolsmith.registry import ToolRegistry, rank

SCHEMA = """
CREATE TABLE IF NOT EXISTS tools (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    doc TEXT NOT NULL,
    data TEXT NOT NULL,
    vec BLOB,
    embedder TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE IF NOT EXISTS tool_versions (
    namespace TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    archived_at REAL NOT NULL,
    PRIMARY KEY (namespace, name, version)
);
CREATE TABLE IF NOT EXISTS trajectories (
    namespace TEXT NOT NULL,
    env_id TEXT NOT NULL,
    episode_id TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (namespace, env_id, episode_id)
);
"""


class ToolRegistryError(EvolventError):
    """The tool registry file cannot be opened or read."""


class SqliteToolRegistry(ToolRegistry):
    """``SqliteToolRegistry(path, embedder, namespace)``; ``read_only`` opens an existing
    file without creating or writing anything (the embedder is then never called)."""

    def __init__(
        self,
        path: Path | str,
        embedder: Embedder,
        namespace: str = "default",
        *,
        read_only: bool = False,
    ) -> None:
        super().__init__(namespace)
        self.path = Path(path)
        self.embedder = embedder
        self.read_only = read_only
        self._depth = 0
        self._writes = 0
        """Write transactions this connection committed (other connections' commits show
        in ``PRAGMA data_version``)."""
        self._found: dict[tuple[str, int], tuple[tuple[int, int], list[Tool]]] = {}
        """``retrieve``'s answers, with the state of the file they were read from."""
        try:
            if read_only:
                if not self.path.is_file():
                    raise ToolRegistryError(f"no tool registry at {self.path}")
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._db = sqlite3.connect(
                    uri, uri=True, timeout=30, check_same_thread=False, isolation_level=None
                )
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(
                    self.path, timeout=30, check_same_thread=False, isolation_level=None
                )
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.executescript(SCHEMA)
        except sqlite3.Error as e:
            raise ToolRegistryError(f"cannot open the tool registry {self.path}: {e}") from None

    # -- transactions -----------------------------------------------------------------

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A write transaction (``BEGIN IMMEDIATE``: other processes wait, up to 30 s);
        plain reads only take the thread lock and see the last committed state."""
        with self._lock:
            outer = self._depth == 0
            if outer and not self.read_only:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if outer and not self.read_only:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer and not self.read_only:
                self._db.execute("COMMIT")
                self._writes += 1

    # -- primitives -------------------------------------------------------------------

    def put(self, tool: Tool) -> None:
        with self.atomic():
            row = self._db.execute(
                "SELECT doc, vec, embedder FROM tools WHERE namespace=? AND name=?",
                (self.namespace, tool.name),
            ).fetchone()
            if row is not None and row[0] == tool.doc and row[1] is not None:
                vec_blob, emb_name = row[1], row[2]
            else:
                vec_blob, emb_name = self._embed(tool.doc), self.embedder.name
            self._db.execute(
                "INSERT OR REPLACE INTO tools (namespace, name, version, status, doc, data, vec,"
                " embedder, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    self.namespace,
                    tool.name,
                    tool.version,
                    tool.status,
                    tool.doc,
                    tool.model_dump_json(),
                    vec_blob,
                    emb_name,
                    time.time(),
                ),
            )

    def get(self, name: str) -> Tool | None:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM tools WHERE namespace=? AND name=?", (self.namespace, name)
            ).fetchone()
        return Tool.model_validate_json(row[0]) if row else None

    def list_tools(self, status: ToolStatus | None = None) -> list[Tool]:
        sql = "SELECT data FROM tools WHERE namespace=?"
        params: tuple[str, ...] = (self.namespace,)
        if status is not None:
            check_status(status)
            sql, params = sql + " AND status=?", (*params, status)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY rowid", params).fetchall()
        return [Tool.model_validate_json(r[0]) for r in rows]

    def retrieve(self, query: str, k: int = 5) -> list[Tool]:
        """The ``k`` active tools whose docs are nearest ``query``. Asked again while the
        file is unchanged (no commit here or by another connection), the answer is the one
        found before: the executor asks once per step with the same task."""
        if k <= 0:
            return []
        with self._lock:
            version = (self._db.execute("PRAGMA data_version").fetchone()[0], self._writes)
            known = self._found.get((query, k))
            if known is not None and known[0] == version:
                return list(known[1])
            rows = self._db.execute(
                "SELECT name, doc, vec, embedder, data FROM tools"
                " WHERE namespace=? AND status='active' ORDER BY rowid",
                (self.namespace,),
            ).fetchall()
            found: list[Tool] = []
            if rows:
                q = self.embedder.embed([query])[0]
                vecs = np.stack(
                    [self._vector(name, doc, vec, emb, q) for name, doc, vec, emb, _ in rows]
                )
                # The nearest tools from the rows read here: no query per tool found.
                found = [Tool.model_validate_json(rows[i][4]) for i in rank(q, vecs, k)]
            if len(self._found) >= 256:
                self._found.clear()
            # Re-embedding a doc (``_vector``) writes: the version after it.
            version = (self._db.execute("PRAGMA data_version").fetchone()[0], self._writes)
            self._found[(query, k)] = (version, found)
        return list(found)

    def _archive(self, tool: Tool) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tool_versions (namespace, name, version, data, archived_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (self.namespace, tool.name, tool.version, tool.model_dump_json(), time.time()),
        )

    def _archived(self, name: str) -> list[Tool]:
        rows = self._db.execute(
            "SELECT data FROM tool_versions WHERE namespace=? AND name=? ORDER BY version",
            (self.namespace, name),
        ).fetchall()
        return [Tool.model_validate_json(r[0]) for r in rows]

    def _remove(self, name: str) -> None:
        for table in ("tools", "tool_versions"):
            self._db.execute(
                f"DELETE FROM {table} WHERE namespace=? AND name=?", (self.namespace, name)
            )

    def _clear(self) -> int:
        for table in ("tools", "tool_versions"):
            self._db.execute(f"DELETE FROM {table} WHERE namespace=?", (self.namespace,))
        return self._db.execute(
            "DELETE FROM trajectories WHERE namespace=?", (self.namespace,)
        ).rowcount

    def add_trajectory(self, trajectory: Trajectory, keep: int = 200) -> None:
        with self.atomic():
            self._db.execute(
                "DELETE FROM trajectories WHERE namespace=? AND env_id=? AND episode_id=?",
                (self.namespace, trajectory.env_id, trajectory.episode_id),
            )
            self._db.execute(
                "INSERT INTO trajectories (namespace, env_id, episode_id, data, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    self.namespace,
                    trajectory.env_id,
                    trajectory.episode_id,
                    trajectory.model_dump_json(),
                    time.time(),
                ),
            )
            self._db.execute(
                "DELETE FROM trajectories WHERE namespace=? AND env_id=? AND rowid NOT IN ("
                " SELECT rowid FROM trajectories WHERE namespace=? AND env_id=?"
                " ORDER BY rowid DESC LIMIT ?)",
                (self.namespace, trajectory.env_id, self.namespace, trajectory.env_id, keep),
            )

    def trajectories(self, env_id: str | None = None) -> list[Trajectory]:
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM trajectories WHERE namespace=? AND (? IS NULL OR env_id=?)"
                " ORDER BY rowid",
                (self.namespace, env_id, env_id),
            ).fetchall()
        return [Trajectory.model_validate_json(r[0]) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- internals --------------------------------------------------------------------

    def _embed(self, text: str) -> bytes:
        vec: npt.NDArray[np.float32] = np.asarray(self.embedder.embed([text])[0], np.float32)
        return vec.tobytes()

    def _vector(
        self,
        name: str,
        doc: str,
        blob: bytes | None,
        emb_name: str | None,
        query: npt.NDArray[np.float32],
    ) -> npt.NDArray[np.float32]:
        """The stored vector; re-embedded (and stored again) after a change of embedder."""
        if blob is not None and emb_name == self.embedder.name:
            vec = np.frombuffer(blob, dtype=np.float32)
            if vec.shape == query.shape:
                return vec
        blob = self._embed(doc)
        if not self.read_only:
            self._db.execute(
                "UPDATE tools SET vec=?, embedder=? WHERE namespace=? AND name=?",
                (blob, self.embedder.name, self.namespace, name),
            )
            self._writes += int(self._depth == 0)  # committed now (outside ``atomic``)
        return np.frombuffer(blob, dtype=np.float32)
