from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import EvolventError
from memory import EpisodicParams, HashingEmbedder, MemoryStore
from memory.embeddings import length_groups
from memory.records import Provenance


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore.in_memory(HashingEmbedder(), episodic=EpisodicParams(epsilon=0.0))


def test_q_update_is_exact(store: MemoryStore) -> None:
    mid = store.episodes.add("cook a meal", "took knife", success=True, reward=1.0)
    q = store.episodes.reinforce([mid], reward=1.0)[mid]
    assert q == pytest.approx(0.3)
    q = store.episodes.reinforce([mid], reward=-1.0)[mid]
    assert q == pytest.approx(0.3 + 0.3 * (-1.0 - 0.3))
    rec = store.get(mid)
    assert rec is not None and rec.uses == 2 and rec.successes == 1 and rec.failures == 1


def test_equal_similarity_higher_q_first(store: MemoryStore) -> None:
    # Same intent text would merge, so lower the merge threshold's reach with distinct ids.
    store.episodes.params.merge_threshold = 1.01
    a = store.episodes.add("open the chest", "A", success=True, reward=1.0)
    b = store.episodes.add("open the chest", "B", success=True, reward=1.0)
    store.episodes.reinforce([b], 1.0)
    hits = store.episodes.retrieve("open the chest", k=2)
    assert [h.id for h in hits] == [b, a]
    assert hits[0].similarity == pytest.approx(hits[1].similarity)


def test_below_q_floor_is_dropped(store: MemoryStore) -> None:
    mid = store.episodes.add("find the coin", "went east", success=False, reward=0.0)
    for _ in range(2):
        store.episodes.reinforce([mid], -1.0)
    assert store.episodes.retrieve("find the coin") == []


def test_failing_memory_leaves_top_k_within_five_reinforcements(store: MemoryStore) -> None:
    store.episodes.params.merge_threshold = 1.01
    bad = store.episodes.add("cook the carrot", "bad", success=False, reward=0.0)
    for i in range(4):
        store.episodes.add("cook the carrot", f"other {i}", success=True, reward=1.0)
    store.episodes.params.k2 = 3
    assert bad in [h.id for h in store.episodes.retrieve("cook the carrot", k=5)]
    dropped_after = None
    for n in range(1, 6):
        store.episodes.reinforce([bad], -1.0)
        if bad not in [h.id for h in store.episodes.retrieve("cook the carrot")]:
            dropped_after = n
            break
    assert dropped_after is not None and dropped_after <= 5


def test_near_duplicate_intent_is_merged(store: MemoryStore) -> None:
    a = store.episodes.add("cook the yellow potato", "first", success=False, reward=0.0)
    b = store.episodes.add("cook the yellow potato", "second", success=True, reward=1.0)
    assert a == b
    rec = store.get(a)
    assert rec is not None and rec.text == "second" and rec.meta["merged"] == 1
    assert len(rec.meta["history"]) == 2
    assert store.stats()["episode"] == 1


def test_a_merged_memory_names_every_episode_it_holds(store: MemoryStore) -> None:
    """Its provenance is the episode whose experience it shows, env and seed included (the
    seed stayed the first episode's); every episode filed under it lists and deletes it."""

    def played(experience: str, success: bool, episode: str, seed: int) -> str:
        prov = Provenance(episode_id=episode, env_id="toy:keys", seed=seed)
        reward = float(success)
        return store.episodes.add("open the chest", experience, success, reward, provenance=prov)

    mid = played("first", False, "run-a", 7)
    assert played("second", True, "run-b", 1) == played("third", False, "run-c", 3) == mid
    rec = store.get(mid)
    assert rec is not None and rec.text == "second"
    assert (rec.provenance.episode_id, rec.provenance.seed) == ("run-b", 1)
    assert rec.provenance.outcome == "success"
    assert rec.meta["episodes"] == ["run-a", "run-b", "run-c"]
    for episode in ("run-a", "run-b", "run-c"):
        assert [r.id for r in store.taught_by(episode)] == [mid]
    assert list(store.taught_by("run-d")) == []
    assert store.delete_episode("run-a") == 1 and store.get(mid) is None


def test_similarity_threshold_filters_unrelated(store: MemoryStore) -> None:
    store.episodes.add("collect the golden coin", "x", success=True, reward=1.0)
    assert store.episodes.retrieve("quantum chromodynamics lattice") == []


def test_export_delete_and_provenance(store: MemoryStore) -> None:
    mid = store.episodes.add("task one", "exp", success=True, reward=1.0)
    nid = store.notes.add("task one", "avoid looping")
    rows = list(store.export())
    assert {r["id"] for r in rows} == {mid, nid}
    ep = next(r for r in rows if r["id"] == mid)
    assert ep["provenance"]["outcome"] == "success"
    assert store.delete(nid) is True
    assert store.delete(nid) is False
    assert store.get(nid) is None


def test_notes_vote_and_threshold(store: MemoryStore) -> None:
    nid = store.notes.add("open the fridge before taking food", "open it first")
    assert [h.id for h in store.notes.retrieve("open the fridge before taking food")] == [nid]
    store.notes.vote([nid], up=False)
    rec = store.get(nid)
    assert rec is not None and rec.q == -1.0 and rec.failures == 1


def test_records_and_nearest_read_without_touching_values(store: MemoryStore) -> None:
    near = store.episodes.add("open the wooden chest", "A", success=True, reward=1.0)
    far = store.episodes.add("cook the yellow potato", "B", success=False, reward=0.0)
    note = store.notes.add("open the wooden chest", "unlock it first")
    assert [r.id for r in store.records("episode")] == [near, far]
    assert [r.id for r in store.records("note")] == [note]
    uses = [r.uses for r in store.records("episode")]
    hits = store.nearest("open the wooden chest", ["episode"], k=5)
    assert [r.id for r, _ in hits] == [near, far]
    assert hits[0][1] > hits[1][1]
    both = store.nearest("open the wooden chest", ["episode", "note"], k=2)
    assert {r.id for r, _ in both} == {near, note}
    assert [r.uses for r in store.records("episode")] == uses  # reading is not using


def test_length_groups_bound_padding_and_cover_every_text() -> None:
    texts = ["a" * 500, "bb", "c" * 30, "d" * 40, "e" * 480, "f" * 100]
    groups = length_groups(texts)
    assert sorted(i for g in groups for i in g) == list(range(len(texts)))
    for g in groups:
        shortest = min(len(texts[i]) for i in g)
        assert max(len(texts[i]) for i in g) <= 2 * shortest + 32
    assert [sorted(g) for g in groups] == [[1, 2], [3, 5], [0, 4]]
    assert length_groups([]) == []


def test_a_store_is_a_context_manager(tmp_path: Path) -> None:
    with MemoryStore.open(path=tmp_path, embedder=HashingEmbedder()) as store:
        mid = store.episodes.add("open the chest", "took the key", success=True, reward=1.0)
        assert store.get(mid) is not None
    with pytest.raises(EvolventError, match="is closed"):
        store.get(mid)
    with MemoryStore.open(path=tmp_path, embedder=HashingEmbedder()) as again:  # lock let go
        assert again.get(mid) is not None
