"""The write journal's lines and how its entries merge into Chroma calls."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from memory import journal as journal_module
from memory.journal import JOURNAL_NAME, Entry, WriteJournal, batches
from memory.records import MemoryRecord


def rec(i: str, text: str = "t") -> MemoryRecord:
    return MemoryRecord(id=i, kind="note", key=i, text=text, meta={"steps": [1, 2]})


def vec(*xs: float) -> np.ndarray:
    return np.array([[x, 1.0 - x] for x in xs], dtype=np.float32)


def test_a_line_reads_back_exactly() -> None:
    for e in (
        Entry("add", "c/ns", [rec("a"), rec("b", "é")], vec(0.1, 0.7)),
        Entry("update", "c", [rec("a", "u")]),
        Entry("delete", "c", [], ids=["a", "z"]),
    ):
        back = Entry.parse(e.line())
        assert (back.op, back.collection, back.records, back.ids) == (
            e.op, e.collection, e.records, e.ids,
        )  # fmt: skip
        if e.vectors is None:
            assert back.vectors is None
        else:
            assert back.vectors is not None and np.array_equal(back.vectors, e.vectors)


def test_runs_of_one_kind_and_collection_merge_keeping_their_meaning() -> None:
    entries = [
        Entry("add", "c", [rec("a", "first")], vec(0.1)),
        Entry("add", "c", [rec("a", "second"), rec("b")], vec(0.2, 0.3)),  # a: changes nothing
        Entry("add", "d", [rec("x")], vec(0.4)),  # another collection: sent on its own
        Entry("update", "c", [rec("a", "u1"), rec("b", "u1")]),
        Entry("update", "c", [rec("a", "u2")]),  # the last update of a wins
        Entry("upsert", "c", [rec("b", "v1")], vec(0.5)),
        Entry("upsert", "c", [rec("b", "v2")], vec(0.6)),
        Entry("delete", "c", [], ids=["a"]),
        Entry("delete", "c", [], ids=["a", "b"]),
        Entry("add", "c", [rec("a", "again")], vec(0.9)),
    ]
    got = [
        (b.op, b.collection, [(r.id, r.text) for r in b.records], b.ids) for b in batches(entries)
    ]
    # Each collection's entries together (collections are independent), in their order.
    assert got == [
        ("add", "c", [("a", "first"), ("b", "t")], ["a", "b"]),
        ("update", "c", [("b", "u1"), ("a", "u2")], ["b", "a"]),
        ("upsert", "c", [("b", "v2")], ["b"]),
        ("delete", "c", [], ["a", "b"]),
        ("add", "c", [("a", "again")], ["a"]),
        ("add", "d", [("x", "t")], ["x"]),
    ]
    first = batches(entries)[0].vectors
    assert first is not None and np.allclose(first, vec(0.1, 0.3))  # a's first vector
    assert np.allclose(batches(entries)[2].vectors, vec(0.6))  # type: ignore[arg-type]


def test_an_episode_after_another_is_one_call_per_collection_and_kind() -> None:
    entries = []
    for ep in range(5):  # per episode: its step values, then a Q update of a recalled memory
        entries.append(Entry("add", "values", [rec(f"v{ep}")], vec(0.1 * ep)))
        entries.append(Entry("update", "episodes", [rec("e0", f"q{ep}")]))
    got = [(b.op, b.collection, b.ids) for b in batches(entries)]
    assert got == [
        ("add", "values", [f"v{ep}" for ep in range(5)]),
        ("update", "episodes", ["e0"]),
    ]
    assert batches(entries)[1].records[0].text == "q4"


def test_the_journal_file_holds_what_waits_and_a_torn_last_line_is_skipped(
    tmp_path: Path,
) -> None:
    j = WriteJournal(tmp_path, batch=3, seconds=60.0)
    j.append(Entry("add", "c", [rec("a")], vec(0.1)))
    j.append(Entry("update", "c", [rec("a", "u")]))
    assert not j.due()
    left = WriteJournal.left(tmp_path)
    assert [(e.op, e.records[0].text) for e in left] == [("add", "t"), ("update", "u")]
    with (tmp_path / JOURNAL_NAME).open("ab") as f:  # a crash in the middle of a write
        f.write(Entry("delete", "c", [], ids=["a"]).line()[:-9])
    assert len(WriteJournal.left(tmp_path)) == 2
    j.append(Entry("delete", "c", [], ids=["a"]))
    assert j.due()  # three wait
    j.sent()
    assert WriteJournal.left(tmp_path) == [] and j.entries == []
    j.close()


def test_the_oldest_write_waits_at_most_the_given_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The journal's clock, moved by hand: a loaded machine cannot make "not yet" late.
    now = [1000.0]
    monkeypatch.setattr(journal_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    j = WriteJournal(tmp_path, batch=100, seconds=5.0)
    j.append(Entry("update", "c", [rec("a")]))
    now[0] += 4.9
    j.append(Entry("update", "c", [rec("b")]))  # a later write does not restart the wait
    assert not j.due()
    now[0] += 0.1
    assert j.due()
    j.close()


def test_a_group_of_writes_is_synced_once_at_its_end_and_written_at_once(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    import threading

    j = WriteJournal(tmp_path, batch=100, seconds=60.0)
    lock = threading.RLock()
    j.append(Entry("update", "c", [rec("a")]))
    assert len(fsyncs) == 1  # outside a group: each write
    with j.group(lock):
        j.append(Entry("add", "c", [rec("b")], vec(0.2)))
        with j.group(lock):  # nested: the outer group's end syncs
            j.append(Entry("update", "c", [rec("b", "u")]))
        assert len(fsyncs) == 1
        # Written at once: a process dying here leaves them in the journal.
        assert [e.op for e in WriteJournal.left(tmp_path)] == ["update", "add", "update"]
        seen: list[int] = []

        def other_thread() -> None:  # another thread's writes are not in this group
            j.append(Entry("update", "c", [rec("c")]))
            seen.append(len(fsyncs))

        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        assert seen == [2]
    assert len(fsyncs) == 2  # that thread's sync covered the group's lines: none needed
    with pytest.raises(RuntimeError), j.group(lock):
        j.append(Entry("update", "c", [rec("d")]))
        raise RuntimeError("a failed episode's writes are synced all the same")
    assert len(fsyncs) == 3
    with j.group(lock):
        pass
    assert len(fsyncs) == 3  # nothing written, nothing synced
    j.close()
