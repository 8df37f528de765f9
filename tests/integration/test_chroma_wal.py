"""The embedded store keeps Chroma's SQLite file in write-ahead-log mode, old stores included.

Every Chroma call here runs in a child process: this process opens the file only with
Python's sqlite3, as a user's tool would, never beside Chroma's own SQLite (see
``memory.chroma.write_ahead_log``)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from memory_sites import OPEN, run_python

pytestmark = pytest.mark.integration


def _mode(db: Path) -> str:
    con = sqlite3.connect(db)
    try:
        return str(con.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        con.close()


def _open(path: Path, code: str, read_only: bool = False) -> dict[str, object]:
    head = OPEN.format(loc={"path": str(path)}, ns="wal", ro=read_only, wb=1)
    done = run_python(head + code)
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout)
    return out


def test_a_new_store_and_an_old_one_write_ahead(tmp_path: Path) -> None:
    path, db = tmp_path / "memory", tmp_path / "memory" / "chroma.sqlite3"
    written = _open(
        path,
        """
a = st.episodes.add("cook the potato", "slice it", success=True, reward=1.0)
st.close()
print(json.dumps({"id": a}))
""",
    )
    assert _mode(db) == "wal"
    # A store written before: Chroma's default rollback journal. It is converted when a
    # writer opens it, with what it holds.
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode=DELETE").fetchone()[0] == "delete"
    con.close()
    seen = _open(
        path,
        """
b = st.episodes.add("open the chest", "use the key", success=True, reward=1.0)
hits = [h.id for h in st.episodes.retrieve("cook the potato")]
st.close()
print(json.dumps({"hits": hits, "id": b}))
""",
    )
    assert _mode(db) == "wal" and seen["hits"] == [written["id"]]
    # A reader leaves the mode as it is and sees both writes.
    read = _open(path, "print(json.dumps(st.stats()))\nst.close()", read_only=True)
    assert read["episode"] == 2
