"""The embedded store's read copy (``memory/replica.py``) answers as Chroma does.

Each test writes through a backend that reads from its copy, and compares every read with
a second backend on the same store whose reads all go to Chroma (``replica_limit=0``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest

from memory.chroma import ChromaBackend
from memory.records import MemoryRecord, Provenance

pytestmark = pytest.mark.integration

DIM = 8
COL = "copied"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[ChromaBackend, ChromaBackend]]:
    copied = ChromaBackend.embedded(tmp_path / "mem", replica_limit=50)
    direct = ChromaBackend.embedded(tmp_path / "mem", replica_limit=0)
    yield copied, direct
    direct.close()
    copied.close()


def _record(i: int, text: str = "t") -> MemoryRecord:
    # Distinct creation times, so "oldest first" has one answer.
    prov = Provenance(created_at=1000.0 + i, episode_id=f"ep{i}")
    return MemoryRecord(id=f"r{i}", kind="note", key=f"k{i}", text=text, provenance=prov)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def _reads(b: ChromaBackend, probes: np.ndarray) -> dict[str, object]:
    ids = [f"r{i}" for i in range(-1, 40)]
    return {
        "count": b.count(COL),
        "get": [r.model_dump() for r in b.get(COL, ids + ids[:3])],
        "scan": [r.model_dump() for r in b.scan(COL)],
        "query": [[r.id for r, _ in b.query(COL, p, 4)] for p in probes],
        "many": [[r.id for r, _ in hits] for hits in b.query_many(COL, probes, 3)],
    }


def _similarities(b: ChromaBackend, probes: np.ndarray) -> np.ndarray:
    return np.array([[s for _, s in b.query(COL, p, 4)] for p in probes], dtype=np.float64)


def test_every_read_of_the_copy_matches_chroma_across_random_writes(
    pair: tuple[ChromaBackend, ChromaBackend],
) -> None:
    copied, direct = pair
    rng = np.random.default_rng(7)
    pick = random.Random(7)
    probes = _unit(rng, 5)
    assert _reads(copied, probes) == _reads(direct, probes)  # an absent collection
    for step in range(60):
        op = pick.choice(["add", "upsert", "update", "delete", "drop"] if step % 20 else ["add"])
        ids = pick.sample(range(30), pick.randint(1, 4))
        recs = [_record(i, text=f"v{step}") for i in ids]
        if op == "add":
            copied.add(COL, recs, _unit(rng, len(recs)))
        elif op == "upsert":
            copied.upsert(COL, recs, _unit(rng, len(recs)))
        elif op == "update":
            copied.update(COL, recs)
        elif op == "delete":
            assert copied.delete(COL, [f"r{i}" for i in ids]) >= 0
        else:
            copied.drop(COL)
        assert _reads(copied, probes) == _reads(direct, probes), (step, op)
        # The copy's exact dot product and Chroma's cosine distance round differently.
        np.testing.assert_allclose(
            _similarities(copied, probes), _similarities(direct, probes), atol=1e-5
        )
    assert copied._state.replica.held(COL) is True


def test_a_collection_past_the_limit_is_read_from_chroma(tmp_path: Path) -> None:
    b = ChromaBackend.embedded(tmp_path / "mem", replica_limit=3)
    try:
        rng = np.random.default_rng(1)
        vecs = _unit(rng, 5)
        b.add(COL, [_record(i) for i in range(2)], vecs[:2])
        assert b.count(COL) == 2 and b._state.replica.held(COL) is True
        b.add(COL, [_record(i) for i in range(2, 5)], vecs[2:])
        assert b._state.replica.held(COL) is False  # let go once it grew past the limit
        assert b.count(COL) == 5
        assert [r.id for r, _ in b.query(COL, vecs[4], 1)] == ["r4"]
        assert [r.id for r in b.scan(COL)] == [f"r{i}" for i in range(5)]
    finally:
        b.close()


def test_a_failed_write_drops_the_copy_and_the_next_read_reloads_it(
    pair: tuple[ChromaBackend, ChromaBackend],
) -> None:
    copied, direct = pair
    rng = np.random.default_rng(2)
    copied.add(COL, [_record(0)], _unit(rng, 1))
    assert copied.count(COL) == 1
    wide = np.ones((1, DIM + 3), dtype=np.float32) / np.sqrt(DIM + 3)
    with pytest.raises(Exception, match=r"(?i)dimension"):
        copied.add(COL, [_record(1)], wide)
    assert copied._state.replica.held(COL) is None
    probes = _unit(rng, 2)
    assert _reads(copied, probes) == _reads(direct, probes)


def test_threads_writing_and_reading_leave_the_copy_equal_to_chroma(
    pair: tuple[ChromaBackend, ChromaBackend],
) -> None:
    copied, direct = pair
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            for i in range(8):
                n = seed * 100 + i
                copied.upsert(COL, [_record(n)], _unit(rng, 1))
                copied.query(COL, _unit(rng, 1)[0], 3)
                if i % 3 == 2:
                    copied.delete(COL, [f"r{n - 1}"])
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    probes = _unit(np.random.default_rng(9), 4)
    assert copied.count(COL) == 4 * (8 - 2)
    assert _reads(copied, probes) == _reads(direct, probes)


def test_a_reader_never_sees_a_copy_being_let_go(tmp_path: Path) -> None:
    # While one thread adds past the limit (the copy is dropped, reads move to Chroma),
    # another keeps counting: the count only grows, with no gap where the copy was.
    b = ChromaBackend.embedded(tmp_path / "mem", replica_limit=40, write_batch=64)
    seen: list[int] = []
    done = threading.Event()

    def count() -> None:
        while not done.is_set():
            seen.append(b.count(COL))

    rng = np.random.default_rng(4)
    try:
        b.add(COL, [_record(0)], _unit(rng, 1))
        reader = threading.Thread(target=count)
        reader.start()
        try:
            for i in range(1, 60):
                b.add(COL, [_record(i)], _unit(rng, 1))
        finally:
            done.set()
            reader.join()
        assert b._state.replica.held(COL) is False and b.count(COL) == 60
        assert seen and seen[0] >= 1
        assert all(a <= c for a, c in pairwise(seen)), seen
    finally:
        b.close()
