"""Chroma's SQLite file in write-ahead-log mode."""

from __future__ import annotations

from pathlib import Path

OPENED: set[Path] = set()
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
