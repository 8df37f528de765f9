"""The memory contract, run against every backend: in-process, embedded Chroma, Chroma server.

The server is a real ``chroma run`` started by this session; nothing here mocks Chroma.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from memory_sites import KINDS, OPEN, WRITE_AND_DIE, Site, run_python
from memory_sites import chroma_server as chroma_server  # session fixture, started on first use

from memory import MemoryHit, MemoryStore, default_embedder
from memory.actions import StepSample
from memory.embeddings import CachedEmbedder
from memory.records import MemoryRecord, Provenance
from memory.store import KINDS as KINDS_OF_MEMORY

pytestmark = pytest.mark.integration


@pytest.fixture(params=KINDS)
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    url = request.getfixturevalue("chroma_server") if request.param == "server" else None
    s = Site(request.param, tmp_path, url)
    yield s
    s.close()


@pytest.fixture
def store(site: Site) -> MemoryStore:
    return site.store()


_EMPTY = dict.fromkeys(KINDS_OF_MEMORY, 0)


def _ids(hits: Sequence[MemoryHit]) -> list[str]:
    return [h.id for h in hits]


# -- episodic memory ----------------------------------------------------------------------


def test_q_update_is_exact(site: Site, store: MemoryStore) -> None:
    mid = store.episodes.add("cook a meal", "took knife", success=True, reward=1.0)
    assert store.episodes.reinforce([mid], 1.0)[mid] == pytest.approx(0.3)
    q = store.episodes.reinforce([mid], -1.0)[mid]
    assert q == pytest.approx(0.3 + 0.3 * (-1.0 - 0.3))
    again = site.store()  # a second handle reads what the first wrote
    rec = again.get(mid)
    assert rec is not None and rec.q == q
    assert (rec.uses, rec.successes, rec.failures) == (2, 1, 1)


def test_equal_similarity_higher_q_first(store: MemoryStore) -> None:
    store.episodes.params.merge_threshold = 1.01  # same intent twice, kept apart
    a = store.episodes.add("open the chest", "A", success=True, reward=1.0)
    b = store.episodes.add("open the chest", "B", success=True, reward=1.0)
    store.episodes.reinforce([b], 1.0)
    hits = store.episodes.retrieve("open the chest", k=2)
    assert _ids(hits) == [b, a]
    assert hits[0].similarity == pytest.approx(hits[1].similarity, abs=1e-5)
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_below_q_floor_is_dropped(store: MemoryStore) -> None:
    mid = store.episodes.add("find the coin", "went east", success=False, reward=0.0)
    assert _ids(store.episodes.retrieve("find the coin")) == [mid]
    store.episodes.reinforce([mid], -1.0)  # Q = -0.3, above the -0.5 floor
    assert _ids(store.episodes.retrieve("find the coin")) == [mid]
    store.episodes.reinforce([mid], -1.0)  # Q = -0.51
    assert store.episodes.retrieve("find the coin") == []


def test_below_delta_is_dropped(store: MemoryStore) -> None:
    store.episodes.add("collect the golden coin", "x", success=True, reward=1.0)
    assert store.episodes.retrieve("quantum chromodynamics lattice") == []
    assert store.episodes.recall("quantum chromodynamics lattice") == []


def test_near_duplicate_intent_is_merged(store: MemoryStore) -> None:
    a = store.episodes.add("cook the yellow potato", "first", success=False, reward=0.0)
    b = store.episodes.add("cook the yellow potato", "second", success=True, reward=1.0)
    c = store.episodes.add("cook the yellow potato", "third", success=False, reward=0.0)
    assert a == b == c
    rec = store.get(a)
    assert rec is not None and rec.meta["merged"] == 2
    assert rec.text == "second"  # a failure does not replace a success
    assert [h["experience"] for h in rec.meta["history"]] == ["first", "second", "third"]
    assert store.stats()["episode"] == 1
    other = store.episodes.add("open the blue door", "x", success=True, reward=1.0)
    assert other != a and store.stats()["episode"] == 2


def _episodes_as_written(st: MemoryStore) -> dict[str, tuple[object, ...]]:
    """Each episodic record by its intent: what learning changes (not ids or times)."""
    return {
        r.key: (
            round(r.q, 12),
            (r.uses, r.successes, r.failures),
            r.text,
            r.provenance.outcome,
            r.provenance.episode_id,
            r.meta.get("merged"),
            [(h["experience"], h["success"], h["reward"]) for h in r.meta["history"]],
        )
        for r in st.records("episode")
    }


def test_learning_an_episode_is_reinforce_then_add_in_fewer_writes(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    apart, together = site.store("apart"), site.store("together")
    used: list[list[str]] = []
    for st in (apart, together):
        potato = st.episodes.add("cook the yellow potato", "slice", success=True, reward=1.0)
        chest = st.episodes.add("open the old chest", "key", success=False, reward=0.0)
        used.append([potato, chest])
    writes: list[str] = []
    counting = [False]  # the in-process site shares one backend between the two stores
    backend = together.episodes.backend

    def counted(name: str) -> Any:
        real = getattr(backend, name)

        def write(*args: Any) -> Any:
            if counting[0]:
                writes.append(name)
            return real(*args)

        return write

    for name in ("add", "update"):
        monkeypatch.setattr(backend, name, counted(name))
    # Filed under a memory it used (one write for both), then an intent of its own.
    for intent, provenance in [
        ("cook the yellow potato", Provenance(episode_id="e1")),
        ("find the lost coin", Provenance(episode_id="e2")),
    ]:
        potato, chest = used[0]
        apart.episodes.reinforce([potato, chest, potato], -1.0)
        a = apart.episodes.add(intent, "fry", success=False, reward=0.2, provenance=provenance)
        potato, chest = used[1]
        counting[0] = True
        b = together.episodes.learn_episode(
            [potato, chest, potato],
            -1.0,
            intent,
            "fry",
            success=False,
            reward=0.2,
            provenance=provenance.model_copy(),
        )
        counting[0] = False
        assert (a == used[0][0]) == (b == used[1][0])
    assert _episodes_as_written(together) == _episodes_as_written(apart)
    assert writes == ["update", "update", "add"]
    assert together.episodes.learn_episode([], 1.0, "open the old chest", "x", True, 1.0) in used[1]


def test_failing_memory_leaves_top_k_within_five_reinforcements(store: MemoryStore) -> None:
    store.episodes.params.merge_threshold = 1.01
    bad = store.episodes.add("cook the carrot", "bad", success=False, reward=0.0)
    for i in range(4):
        store.episodes.add("cook the carrot", f"other {i}", success=True, reward=1.0)
    assert bad in _ids(store.episodes.retrieve("cook the carrot", k=5))
    dropped_after = None
    for n in range(1, 6):
        store.episodes.reinforce([bad], -1.0)
        if bad not in _ids(store.episodes.retrieve("cook the carrot")):
            dropped_after = n
            break
    assert dropped_after is not None and dropped_after <= 5


def test_update_keeps_embeddings(store: MemoryStore) -> None:
    mid = store.episodes.add("take the apple from the fridge", "x", success=True, reward=1.0)
    before = store.episodes.retrieve("take the apple")[0].similarity
    store.episodes.reinforce([mid], 1.0)
    hit = store.episodes.retrieve("take the apple")[0]
    assert hit.id == mid and hit.q == pytest.approx(0.3)
    assert hit.similarity == pytest.approx(before, abs=1e-5)


def test_add_keeps_an_existing_id(store: MemoryStore) -> None:
    mid = store.episodes.add("open the fridge", "first", success=True, reward=1.0)
    rec = store.get(mid)
    assert rec is not None
    vec = store.embedder.embed(["something else entirely"])
    store.backend.add(store.episodes.collection, [rec.model_copy(update={"text": "second"})], vec)
    again = store.get(mid)
    assert again is not None and again.text == "first"
    assert store.episodes.retrieve("open the fridge")[0].id == mid


def test_counts_follow_every_write(store: MemoryStore) -> None:
    # The embedded store remembers counts between writes; every write must show in them.
    backend, col = store.backend, "counted"
    rec = [MemoryRecord(id=f"r{i}", kind="note", key=f"k{i}", text="t") for i in range(3)]
    vecs = store.embedder.embed([r.key for r in rec])
    assert backend.count(col) == 0
    backend.add(col, rec[:2], vecs[:2])
    assert backend.count(col) == backend.count(col) == 2
    backend.add(col, rec[:1], vecs[:1])  # an existing id: kept as it was
    assert backend.count(col) == 2
    backend.upsert(col, rec, vecs)
    assert backend.count(col) == 3
    # Upserting a record added in a batch replaces its own vector, no other.
    moved = store.embedder.embed(["something else entirely"])
    backend.upsert(col, rec[1:2], moved)
    assert next(r.id for r, _ in backend.query(col, moved[0], 3)) == "r1"
    assert [r.id for r, _ in backend.query(col, vecs[2], 1)] == ["r2"]
    backend.update(col, [rec[0].model_copy(update={"text": "u"})])
    assert backend.count(col) == 3
    assert backend.delete(col, ["r1", "nope"]) == 1
    assert backend.count(col) == 2
    assert backend.drop(col) is True
    assert backend.count(col) == 0
    backend.add(col, rec[2:], vecs[2:])
    assert backend.count(col) == 1


def test_query_many_answers_like_query(store: MemoryStore) -> None:
    for text in ("open the fridge", "take the carrot", "slice the carrot", "eat the meal"):
        store.episodes.add(text, "x", success=True, reward=1.0)
    vecs = store.embedder.embed(["open fridge", "carrot", "nothing alike"])
    col = store.episodes.collection
    many = store.backend.query_many(col, vecs, 3)
    one = [store.backend.query(col, v, 3) for v in vecs]
    assert [[(r.id, round(s, 5)) for r, s in hits] for hits in many] == [
        [(r.id, round(s, 5)) for r, s in hits] for hits in one
    ]


def test_a_repeated_step_is_learned_into_one_record(store: MemoryStore) -> None:
    steps = [
        StepSample(state="kitchen, fridge closed", action="open fridge", reward=0.0),
        StepSample(state="kitchen, fridge closed", action="open fridge", reward=1.0),
    ]
    ids = store.actions.learn(steps, success=True)
    assert len(ids) == 1 and store.actions.count() == 1
    rec = store.get(ids[0])
    assert rec is not None and rec.uses == 2


def test_real_embedder_retrieves_by_meaning(site: Site) -> None:
    st = site.store("minilm", embedder=default_embedder())
    key = st.episodes.add("unlock the wooden chest with the key", "a", success=True, reward=1.0)
    st.episodes.add("cook the yellow potato on the stove", "b", success=True, reward=1.0)
    st.episodes.add("take the red apple out of the fridge", "c", success=True, reward=1.0)
    hits = st.episodes.retrieve("open the chest using a key")
    assert hits and hits[0].id == key
    assert st.episodes.retrieve("quantum chromodynamics on a lattice") == []


def test_real_embedder_gives_each_text_its_own_vector_in_any_batch() -> None:
    cached = default_embedder()
    model = cached.inner if isinstance(cached, CachedEmbedder) else cached
    # Lengths far apart: the texts are encoded in several groups, longest last.
    texts = ["You see a fridge and a stove. " * 12, "look", "take the red knife", "x " * 60]
    together = model.embed(texts)
    alone = np.concatenate([model.embed([t]) for t in texts])
    assert together.shape == (4, model.dim)
    assert np.allclose(together, alone, atol=1e-5)
    assert float(together[1] @ together[2]) < 0.99  # not one vector copied everywhere


# -- notes and experiences ------------------------------------------------------------------


def test_notes_merge_vote_and_threshold(store: MemoryStore) -> None:
    nid = store.notes.add("open the fridge before taking food", "open it first")
    assert store.notes.add("open the fridge before taking food", "open it, then take") == nid
    hits = store.notes.retrieve("open the fridge before taking food")
    assert _ids(hits) == [nid] and hits[0].text == "open it, then take"
    assert store.notes.retrieve("quantum chromodynamics lattice") == []
    store.notes.vote([nid], up=False)
    rec = store.get(nid)
    assert rec is not None and rec.q == -1.0 and rec.failures == 1
    eid = store.experiences.add("cooking", "read the cookbook first")
    assert store.stats() == {**_EMPTY, "note": 1, "experience": 1}
    assert store.get(eid) is not None


# -- lifecycle ------------------------------------------------------------------------------


def test_delete(store: MemoryStore) -> None:
    mid = store.episodes.add("task one", "exp", success=True, reward=1.0)
    nid = store.notes.add("task one", "avoid looping")
    assert store.delete(nid) is True
    assert store.delete(nid) is False
    assert store.get(nid) is None and store.get(mid) is not None
    assert store.delete(mid) is True
    assert store.episodes.retrieve("task one") == []
    assert store.stats() == _EMPTY


def _fill(st: MemoryStore) -> list[str]:
    a = st.episodes.add("cook the potato", "slice it", success=True, reward=1.0)
    st.episodes.add("cook the potato", "fry it", success=False, reward=0.0)  # merged into a
    b = st.episodes.add("open the chest", "use the key", success=True, reward=1.0)
    st.episodes.reinforce([a, b], 1.0)
    st.episodes.reinforce([b], -1.0)
    n = st.notes.add("looping", "stop repeating the same command")
    e = st.experiences.add("cooking", "read the cookbook first", meta={"source": "test"})
    st.experiences.vote([e], up=True)
    return [a, b, n, e]


def test_export_import_round_trip_is_exact(site: Site, tmp_path: Path) -> None:
    src = site.store("src")
    ids = _fill(src)
    rows = list(src.export())
    dump = tmp_path / "memory.jsonl"
    dump.write_text("".join(json.dumps(r) + "\n" for r in rows))

    dst = site.store("dst")
    loaded = [json.loads(line) for line in dump.read_text().splitlines()]
    assert dst.import_records(loaded) == len(rows)
    assert list(dst.export()) == rows
    assert {r["id"] for r in rows} == set(ids)
    # Keys were embedded again: retrieval finds the imported records.
    hit = dst.episodes.retrieve("open the chest")[0]
    assert hit.id == ids[1] and hit.q == src.episodes.retrieve("open the chest")[0].q
    assert _ids(dst.notes.retrieve("looping")) == [ids[2]]


def test_scan_is_oldest_first(store: MemoryStore) -> None:
    recs = [
        MemoryRecord(
            id=f"ep-{i}", kind="episode", key=f"task {i}", text="t", provenance=Provenance()
        )
        for i in range(5)
    ]
    for rec, t in zip(recs, [50.0, 10.0, 40.0, 20.0, 30.0], strict=True):
        rec.provenance.created_at = t
    store.import_records(r.model_dump(mode="json") for r in recs)
    assert [r["id"] for r in store.export()] == ["ep-1", "ep-3", "ep-4", "ep-2", "ep-0"]


def test_large_import_is_batched(store: MemoryStore) -> None:
    # More than Chroma's max batch size (5461 embedded) in one upsert.
    n = 6000
    rows = (
        MemoryRecord(id=f"ep-{i:05d}", kind="episode", key=f"t{i}", text="x").model_dump()
        for i in range(n)
    )
    assert store.import_records(rows, batch=n) == n
    assert store.stats()["episode"] == n
    assert store.get("ep-05999") is not None


def test_namespaces_isolate(site: Site) -> None:
    a, b = site.store("alpha"), site.store("beta")
    ids = _fill(a)
    rows = list(a.export())
    b.import_records(rows)  # same ids and texts in both namespaces
    a.episodes.reinforce([ids[0]], -1.0)
    assert a.delete(ids[2])
    assert list(b.export()) == rows
    assert b.get(ids[2]) is not None and a.get(ids[2]) is None
    c = site.store("gamma")
    assert c.stats() == _EMPTY
    assert c.episodes.retrieve("open the chest") == []
    a.reset()
    assert a.stats() == _EMPTY
    assert list(b.export()) == rows


# -- across processes -----------------------------------------------------------------------


def test_persists_across_processes(site: Site) -> None:
    if site.kind == "inprocess":
        pytest.skip("the in-process backend keeps nothing after its process ends, by design")
    head = OPEN.format(
        loc=site.location(), ns=site.namespace("persist"), ro=False, wb=site.write_batch
    )
    # The writer exits without close(): what it wrote must already be durable.
    write = run_python(head + WRITE_AND_DIE)
    assert write.returncode == 0, write.stderr
    written = json.loads(write.stdout)
    read = run_python(
        head
        + """
hits = st.episodes.retrieve("cook the potato")
print(json.dumps({"hits": [h.id for h in hits], "rows": list(st.export())}))
st.close()
"""
    )
    assert read.returncode == 0, read.stderr
    seen = json.loads(read.stdout)
    assert seen["rows"] == written["rows"]
    assert seen["hits"] == [written["id"]]
    if site.kind == "server":
        site.store("persist").reset()
