"""The mistake notebook: batching, clustering, notes, junk handling and the re-run gate."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from agent.llm.scripted import Answer, ScriptedLLM
from memory import HashingEmbedder, MemoryStore
from memory.grouping import note_key
from memory.mistakes import FailureCase, MistakeNote, Subject, clean_subject
from memory.notebook import MistakeNotebook, NotebookParams, NotesView

CELLAR = "open the locked chest in the cellar"
ATTIC = "open the locked chest in the attic"
CARROT = "cook the carrot on the stove"
POTATO = "cook the potato on the stove"
KEY_SUBJECT = "forgot to take the key first"
STOVE_SUBJECT = "cooked without lighting the stove"
SUBJECTS = {
    CELLAR: KEY_SUBJECT,
    ATTIC: "forgot to take the key",
    CARROT: STOVE_SUBJECT,
    POTATO: "cooked without lighting stove",
}


def case(
    n: int, task: str, actions: Sequence[str] = ("look", "look", "look", "open chest")
) -> FailureCase:
    return FailureCase(
        episode_id=f"ep-{n}",
        env_id="toy:keys",
        seed=n,
        task=task,
        actions=list(actions),
        final_observation="The chest is locked.",
        score=0.0,
        max_score=2.0,
        reflections=[f"'look' x3 without progress in episode {n}"],
    )


def batch() -> list[FailureCase]:
    return [case(1, CELLAR), case(2, CARROT), case(3, ATTIC), case(4, POTATO)]


def good_note(subject: str) -> dict[str, Any]:
    return {
        "subject": subject,
        "what_went_wrong": f"The attempt failed because it {subject}.",
        "correct_approach": f"Avoid this: {subject}. Check what the goal needs first.",
        "strategy": "Collect every tool the goal needs before using it.",
        "anti_patterns": ["looking around instead of acting", "looking around instead of acting"],
    }


def tuner(note: Any = good_note) -> ScriptedLLM:
    """Labels each failure by its task and writes a note naming the cluster's subject."""

    def respond(kind: str, prompt: str, about: Sequence[str] | type[BaseModel] | None) -> Answer:
        assert kind == "structured"
        if about is Subject:
            task = re.search(r"Task: (.*)", prompt)
            assert task is not None
            return {"subject": SUBJECTS[task.group(1)]}
        assert about is MistakeNote
        subject = re.search(r"labelled '([^']*)'", prompt)
        assert subject is not None
        answer: Answer = note(subject.group(1))
        return answer

    return ScriptedLLM(responder=respond)


def notebook(llm: ScriptedLLM, **params: Any) -> tuple[MistakeNotebook, MemoryStore]:
    store = MemoryStore.in_memory(HashingEmbedder())
    return MistakeNotebook(store.notes, llm, NotebookParams(**params)), store


def snapshot(store: MemoryStore) -> list[dict[str, Any]]:
    return [r.model_dump() for r in store.backend.scan(store.notes.collection)]


def sees_note(cases: list[FailureCase], view: NotesView) -> list[bool]:
    """A re-run that succeeds exactly where the planner of an agent given the view's notes
    would retrieve a note for the task."""
    store = view.materialize(HashingEmbedder())
    return [bool(store.notes.retrieve(c.task, k=3)) for c in cases]


def test_update_waits_for_a_full_batch() -> None:
    nb, store = notebook(tuner())
    with pytest.raises(ValueError, match="no failures"):
        nb.update(sees_note)
    ready = [nb.record_failure(c) for c in batch()[:3]]
    assert ready == [False, False, False] and not nb.ready
    with pytest.raises(ValueError, match="3 of 4"):
        nb.update(sees_note)
    assert store.notes.count() == 0 and len(nb.pending) == 3
    assert nb.record_failure(case(4, POTATO))
    assert nb.update(sees_note).kept
    assert nb.pending == []


def test_partial_batch_runs_when_forced() -> None:
    nb, store = notebook(tuner())
    nb.record_failure(case(1, CELLAR))
    up = nb.update(sees_note, force=True)
    assert up.episodes == ["ep-1"] and up.kept and store.notes.count() == 1


def test_similar_subjects_cluster_into_one_note_each() -> None:
    llm = tuner()
    nb, store = notebook(llm)
    for c in batch():
        nb.record_failure(c)
    up = nb.update(sees_note)
    assert up.subjects == [SUBJECTS[c.task] for c in batch()]
    assert sorted(map(sorted, up.clusters)) == [["ep-1", "ep-3"], ["ep-2", "ep-4"]]
    assert len(up.note_ids) == len(set(up.note_ids)) == 2 and store.notes.count() == 2
    assert sum(c.schema is MistakeNote for c in llm.calls) == 2  # one note per cluster
    assert up.fallback == [] and up.created == up.note_ids and up.merged == []
    for nid, members in zip(up.note_ids, up.clusters, strict=True):
        rec = store.get(nid)
        assert rec is not None and rec.meta["episodes"] == members
        note = MistakeNote.model_validate(rec.meta["note"])
        assert note.subject in rec.text and note.strategy in rec.text
        # The LLM's duplicate anti-pattern was dropped.
        assert note.anti_patterns == ["looking around instead of acting"]


JUNK_TEXT = "}} {{ the the the"


def junk_json(subject: str) -> dict[str, Any]:
    return {"subject": subject, "what_went_wrong": "!!", "correct_approach": "1.", "strategy": "x"}


@pytest.mark.parametrize("junk", ["unparseable", "empty fields"])
def test_junk_llm_output_falls_back_to_a_note_from_trajectories(junk: str) -> None:
    if junk == "unparseable":
        llm = ScriptedLLM(responder=lambda kind, prompt, about: JUNK_TEXT)
    else:
        llm = tuner(junk_json)
    nb, store = notebook(llm)
    for c in batch():
        nb.record_failure(c)
    up = nb.update(sees_note)
    assert up.kept and up.fallback and set(up.fallback) <= set(up.subjects)
    if junk == "unparseable":
        # Labels fell back to the task's first words; every call retried before giving up.
        assert up.subjects == [c.task for c in batch()]
        assert all(len(c.answers) == llm.max_retries + 1 for c in llm.calls)
    for nid in up.note_ids:
        rec = store.get(nid)
        assert rec is not None
        assert "repeated 'look' 3 times" in rec.text
        assert "last actions: look > look > open chest" in rec.text
        assert "without progress in episode" in rec.text  # the reflections became the fix
        assert MistakeNote.model_validate(rec.meta["note"]).anti_patterns[0] == "repeating 'look'"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ([False] * 4, [False] * 4),
        ([True] * 4, [True] * 4),
        ([True, True, False, False], [False, False, True, False]),
    ],
    ids=["no-change", "already-solved", "more-losses"],
)
def test_rollback_restores_the_collection_exactly(old: list[bool], new: list[bool]) -> None:
    nb, store = notebook(tuner())
    # An existing note the batch's key-subject cluster will merge into, with votes of its own.
    merged_id = store.notes.add(
        key=note_key(KEY_SUBJECT, CELLAR, nb.params.key_task_words),
        text="old advice about the key",
        meta={"note": {"anti_patterns": ["old pattern"]}, "episodes": ["ep-0"]},
    )
    store.notes.vote([merged_id], up=True)
    bystander = store.notes.add(key="unrelated subject | water the plants", text="bystander")
    before = snapshot(store)
    seen: list[NotesView] = []

    def rerun(cases: list[FailureCase], view: NotesView) -> list[bool]:
        seen.append(view)
        return old if len(seen) == 1 else new

    for c in batch():
        nb.record_failure(c)
    up = nb.update(rerun)
    assert not up.kept and up.reason.startswith("rolled back")
    assert up.merged == [merged_id] and len(up.created) == 1
    assert up.wins - up.losses < 1
    # The new view really held the merged note's new text and the created note ...
    old_view, new_view = seen
    assert old_view.ids == [merged_id, bystander]
    assert set(new_view.ids) == {merged_id, bystander, *up.created}
    merged_now = next(r for r in new_view.records if r.id == merged_id)
    assert merged_now.text != "old advice about the key" and merged_now.meta["merged"] == 1
    assert merged_now.meta["episodes"] == ["ep-0", "ep-1", "ep-3"]
    # ... and afterwards everything is exactly as before, votes and timestamps included.
    assert snapshot(store) == before
    rec = store.get(merged_id)
    assert rec is not None and rec.text == "old advice about the key" and rec.q == 1.0


def test_kept_when_new_notes_win_with_provenance() -> None:
    nb, store = notebook(tuner())
    for c in batch():
        nb.record_failure(c)
    up = nb.update(sees_note)
    assert up.old_outcomes == [False] * 4 and up.new_outcomes == [True] * 4
    assert (up.wins, up.losses, up.kept) == (4, 0, True) and up.reason.startswith("kept")
    for nid, members in zip(up.note_ids, up.clusters, strict=True):
        rec = store.get(nid)
        assert rec is not None and rec.kind == "note"
        assert rec.provenance.verifier == "rerun-gate" and rec.provenance.outcome == "failure"
        assert rec.provenance.episode_id == members[0]
        assert rec.meta["batch"] == up.batch_id and rec.meta["episodes"] == members
        assert rec.meta["gate"] == {"batch": up.batch_id, "wins": 4, "losses": 0}
    # Retrieval by task (what the planner does) finds the note; unrelated queries do not.
    hits = nb.retrieve(CARROT)
    assert hits and hits[0].key.startswith(STOVE_SUBJECT)
    assert nb.retrieve("quantum physics lecture") == []


def test_margin_decides_close_calls() -> None:
    def rerun_with(old: list[bool], new: list[bool]) -> Any:
        calls: list[int] = []

        def rerun(cases: list[FailureCase], view: NotesView) -> list[bool]:
            calls.append(1)
            return old if len(calls) == 1 else new

        return rerun

    nb, store = notebook(tuner())
    for c in batch():
        nb.record_failure(c)
    tie = nb.update(rerun_with([True, False, False, False], [False, True, False, False]))
    assert (tie.wins, tie.losses, tie.kept) == (1, 1, False) and store.notes.count() == 0

    nb, store = notebook(tuner(), min_wins_margin=2)
    for c in batch():
        nb.record_failure(c)
    one = nb.update(rerun_with([False] * 4, [True, False, False, False]))
    assert (one.wins, one.kept) == (1, False) and store.notes.count() == 0


def test_failing_rerun_rolls_back_and_requeues_the_batch() -> None:
    nb, store = notebook(tuner())
    store.notes.add(key=note_key(KEY_SUBJECT, CELLAR, 24), text="old advice")
    before = snapshot(store)
    for c in batch():
        nb.record_failure(c)

    def rerun(cases: list[FailureCase], view: NotesView) -> list[bool]:
        raise RuntimeError("environment crashed")

    with pytest.raises(RuntimeError, match="environment crashed"):
        nb.update(rerun)
    assert snapshot(store) == before and nb.pending == batch()
    with pytest.raises(ValueError, match="3 outcomes for a batch of 4"):
        nb.update(lambda cases, view: [True] * 3)
    assert snapshot(store) == before and nb.ready


def test_clean_subject() -> None:
    assert clean_subject("  Forgot the KEY!!  ", "t", 8) == "forgot the key"
    assert clean_subject("one two three four five six seven eight nine", "t", 8).count(" ") == 7
    assert clean_subject("the the the the", "cook the carrot", 8) == "cook the carrot"
    assert clean_subject("", "", 8) == "unlabelled failure"


def test_note_merged_twice_in_one_batch_is_restored_to_its_original() -> None:
    # A loose merge threshold: both clusters' notes land on the one existing note.
    nb, store = notebook(tuner(), merge_threshold=0.0)
    only = store.notes.add(key="anything at all", text="original text")
    before = snapshot(store)
    for c in batch():
        nb.record_failure(c)
    up = nb.update(lambda cases, view: [False] * len(cases))
    assert up.note_ids == [only, only] and up.merged == [only] and up.created == []
    assert not up.kept and snapshot(store) == before
