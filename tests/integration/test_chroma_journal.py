"""Writes journaled and sent to Chroma in batches (``memory/journal.py``), on a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from memory_sites import OPEN, REPO, WRITE_AND_DIE, run_python

from memory.chroma import ChromaBackend
from memory.chroma_names import chroma_name
from memory.journal import JOURNAL_NAME, WriteJournal
from memory.records import MemoryRecord

pytestmark = pytest.mark.integration

COL = "journaled"


def _rec(i: int, text: str = "t") -> MemoryRecord:
    return MemoryRecord(id=f"r{i}", kind="note", key=f"k{i}", text=text)


def _vec(i: int) -> np.ndarray:
    v = np.zeros((1, 8), dtype=np.float32)
    v[0, i % 8] = 1.0
    return v


def _in_chroma(b: ChromaBackend) -> int:
    """Records Chroma itself holds, past our copy and journal."""
    try:
        return int(b.client.get_collection(chroma_name(COL)).count())
    except Exception:  # not created yet
        return 0


def test_writes_wait_in_the_journal_until_a_batch_is_full(tmp_path: Path) -> None:
    b = ChromaBackend.embedded(tmp_path / "mem", write_batch=4, write_batch_s=3600)
    try:
        b.add(COL, [_rec(0)], _vec(0))
        b.update(COL, [_rec(0, "u")])
        b.add(COL, [_rec(1)], _vec(1))
        assert b.count(COL) == 2 and _in_chroma(b) == 0  # read from the copy; Chroma waits
        assert len(WriteJournal.left(tmp_path / "mem")) == 3
        assert [r.text for r in b.get(COL, ["r0"])] == ["u"]
        b.delete(COL, ["r1"])  # the fourth: the batch goes
        assert _in_chroma(b) == 1 and WriteJournal.left(tmp_path / "mem") == []
        b.add(COL, [_rec(2)], _vec(2))
    finally:
        b.close()
    assert WriteJournal.left(tmp_path / "mem") == []  # close sent the rest
    again = ChromaBackend.embedded(tmp_path / "mem", replica_limit=0)
    try:
        assert sorted((r.id, r.text) for r in again.scan(COL)) == [("r0", "u"), ("r2", "t")]
    finally:
        again.close()


def test_grouped_writes_are_journaled_with_one_sync_and_read_at_once(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    b = ChromaBackend.embedded(tmp_path / "mem", write_batch=64, write_batch_s=3600)
    try:
        with b.grouped():
            b.add(COL, [_rec(0)], _vec(0))
            b.update(COL, [_rec(0, "u")])
            b.add(COL, [_rec(1)], _vec(1))
            assert [r.text for r in b.get(COL, ["r0"])] == ["u"]  # the copy has them
            assert len(WriteJournal.left(tmp_path / "mem")) == 3  # so has the file
            assert fsyncs == []
        assert len(fsyncs) == 1
        b.add(COL, [_rec(2)], _vec(2))
        assert len(fsyncs) == 2  # outside a group: a sync a write
    finally:
        b.close()
    again = ChromaBackend.embedded(tmp_path / "mem", replica_limit=0)
    try:
        assert sorted(r.id for r in again.scan(COL)) == ["r0", "r1", "r2"]
    finally:
        again.close()


def test_a_direct_read_of_chroma_sends_the_journal_first(tmp_path: Path) -> None:
    b = ChromaBackend.embedded(tmp_path / "mem", replica_limit=2, write_batch=64)
    try:
        b.add(COL, [_rec(0), _rec(1)], np.vstack([_vec(0), _vec(1)]))
        assert _in_chroma(b) == 0
        b.add(COL, [_rec(2)], _vec(2))  # past the copy's limit: now read from Chroma
        assert b.count(COL) == 3 and _in_chroma(b) == 3
        assert [r.id for r, _ in b.query(COL, _vec(2)[0], 1)] == ["r2"]
    finally:
        b.close()


def test_a_process_that_dies_leaves_its_journal_and_the_next_writer_sends_it(
    tmp_path: Path,
) -> None:
    loc = {"path": str(tmp_path / "mem")}
    head = OPEN.format(loc=loc, ns="j", ro=False, wb=64)
    died = run_python(head + WRITE_AND_DIE)  # the writes are in the journal only
    assert died.returncode == 0, died.stderr
    written = json.loads(died.stdout)
    assert (tmp_path / "mem" / JOURNAL_NAME).stat().st_size > 0
    look = """
print(json.dumps({"rows": list(st.export())}))
st.close()
"""
    writer = run_python(head + look)
    assert writer.returncode == 0, writer.stderr
    assert json.loads(writer.stdout)["rows"] == written["rows"]
    assert WriteJournal.left(tmp_path / "mem") == []
    after = run_python(OPEN.format(loc=loc, ns="j", ro=True, wb=64) + look)
    assert json.loads(after.stdout)["rows"] == written["rows"]


def test_a_reader_sends_a_dead_writers_journal_but_leaves_a_live_ones(tmp_path: Path) -> None:
    loc = {"path": str(tmp_path / "mem")}
    head = OPEN.format(loc=loc, ns="j", ro=False, wb=64)
    look = (
        OPEN.format(loc=loc, ns="j", ro=True, wb=64)
        + """
print(json.dumps({"notes": [r["text"] for r in st.export() if r["kind"] == "note"]}))
st.close()
"""
    )
    live = subprocess.Popen(
        [sys.executable, "-c", head + """
st.notes.add("looping", "stop repeating")
print("written", flush=True)
sys.stdin.readline()  # holds the store, its write in the journal, until told to die
os._exit(0)
"""],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert live.stdout is not None and live.stdout.readline().strip() == "written"
        seen = run_python(look)
        assert seen.returncode == 0, seen.stderr
        assert json.loads(seen.stdout)["notes"] == []  # the live writer's, not sent by a reader
        assert WriteJournal.waiting(tmp_path / "mem")
    finally:
        assert live.stdin is not None
        live.stdin.write("\n")
        live.stdin.close()
        live.wait(timeout=60)
    seen = run_python(look)  # the writer is gone: the reader sends what it left, then reads
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout)["notes"] == ["stop repeating"]
    assert not WriteJournal.waiting(tmp_path / "mem")


def test_a_lone_write_reaches_chroma_after_the_seconds_even_with_no_other_write(
    tmp_path: Path,
) -> None:
    b = ChromaBackend.embedded(tmp_path / "mem", write_batch=64, write_batch_s=0.2)
    try:
        b.add(COL, [_rec(0)], _vec(0))
        assert _in_chroma(b) == 0
        deadline = time.monotonic() + 10
        while WriteJournal.left(tmp_path / "mem") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _in_chroma(b) == 1 and WriteJournal.left(tmp_path / "mem") == []
    finally:
        b.close()


def _unchecked(rid: str) -> MemoryRecord:
    """A record that skipped validation (MemoryRecord itself refuses an empty id)."""
    return MemoryRecord.model_construct(id=rid, kind="note", key="k", text="t")


@pytest.mark.parametrize("batch", [1, 64])
def test_what_chroma_refuses_is_refused_before_it_is_journaled(tmp_path: Path, batch: int) -> None:
    b = ChromaBackend.embedded(tmp_path / "mem", write_batch=batch)
    try:
        b.add(COL, [_rec(0)], _vec(0))
        with pytest.raises(ValueError, match="at least one character"):
            b.add(COL, [_unchecked("")], _vec(1))
        with pytest.raises(ValueError, match="NaN"):
            b.upsert(COL, [_rec(1)], np.full((1, 8), np.nan, dtype=np.float32))
        with pytest.raises(ValueError, match="at least one character"):
            b.update(COL, [_unchecked("")])
        b.add(COL, [_rec(2)], _vec(2))  # the store goes on
    finally:
        b.close()
    assert WriteJournal.left(tmp_path / "mem") == []
    again = ChromaBackend.embedded(tmp_path / "mem", replica_limit=0)
    try:
        assert sorted(r.id for r in again.scan(COL)) == ["r0", "r2"]
    finally:
        again.close()
