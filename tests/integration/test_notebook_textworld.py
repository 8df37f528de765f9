"""The mistake notebook's re-run gate with the real agent on real TextWorld cooking games.

The backbone is scripted: it plays the game's walkthrough only while its prompt contains the
useful note's advice, and idles otherwise. The note can only reach that prompt through the
real graph: the planner retrieves notes by task (real MiniLM embeddings, threshold 0.7) and
the executor renders them. So the re-runs measure whether a note is retrieved and shown,
and the gate has to keep the useful note and roll back the useless ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agent import Agent, EpisodeResult, Settings, load_settings
from agent.llm.scripted import Answer, ScriptedLLM
from benchmarks.envs import make_env
from memory import MemoryStore, default_embedder
from memory.mistakes import FailureCase, Subject
from memory.notebook import MistakeNotebook, NotebookParams, NotebookUpdate, NotesView

pytestmark = pytest.mark.integration

ENV = "textworld:cooking"
SEEDS = (1, 2)
ADVICE = "Read the cookbook, then carry out each recipe step in order"
SUBJECT = "skipped the cookbook recipe"


def walkthrough(settings: Settings, seed: int) -> list[str]:
    env = make_env(ENV, seed, settings.games_path)
    try:
        walk = env.reset().info.extra["walkthrough"]
        assert isinstance(walk, list) and walk
        return [str(c) for c in walk]
    finally:
        env.close()


def policy(walk: list[str]) -> ScriptedLLM:
    """Follows the walkthrough while the prompt holds the advice; otherwise looks around."""
    taken = 0

    def respond(kind: str, prompt: str, about: Sequence[str] | type[BaseModel] | None) -> Answer:
        nonlocal taken
        if kind != "choose":
            return ""  # no plan, no reflection lesson
        assert isinstance(about, list)
        if ADVICE in prompt and taken < len(walk):
            taken += 1
            return walk[taken - 1]
        return "look" if "look" in about else about[0]

    return ScriptedLLM(responder=respond)


def tuner(subject: str, correct_approach: str) -> ScriptedLLM:
    def respond(kind: str, prompt: str, about: Sequence[str] | type[BaseModel] | None) -> Answer:
        if about is Subject:
            return {"subject": subject}
        return {
            "subject": subject,
            "what_went_wrong": "The agent looked around the kitchen instead of cooking.",
            "correct_approach": correct_approach,
            "strategy": "Follow written instructions found in the game before improvising.",
            "anti_patterns": ["repeating look"],
        }

    return ScriptedLLM(responder=respond)


def snapshot(store: MemoryStore) -> list[dict[str, Any]]:
    return [r.model_dump() for r in store.backend.scan(store.notes.collection)]


def test_gate_keeps_a_useful_note_and_rolls_back_useless_ones(
    evolvent_home: Path, games_dir: Path
) -> None:
    settings = load_settings(
        None, **{"home": str(evolvent_home), "games_dir": str(games_dir), "limits.max_steps": 10}
    )
    embedder = default_embedder()
    walks = {seed: walkthrough(settings, seed) for seed in SEEDS}

    def play(seed: int, memory: MemoryStore) -> EpisodeResult:
        with Agent(settings, llm=policy(walks[seed]), memory=memory, embedder=embedder) as a:
            return a.run(ENV, seed=seed)

    def rerun(cases: list[FailureCase], view: NotesView) -> list[bool]:
        return [play(c.seed, view.materialize(embedder)).success for c in cases]

    def gated_update(store: MemoryStore, subject: str, correct_approach: str) -> NotebookUpdate:
        llm = tuner(subject, correct_approach)
        notebook = MistakeNotebook(store.notes, llm, NotebookParams(batch_size=len(SEEDS)))
        for f in failures:
            notebook.record_failure(f)
        assert notebook.ready
        return notebook.update(rerun)

    # Without notes the agent idles until the step limit: these are the batch's failures.
    first = [play(seed, MemoryStore.in_memory(embedder)) for seed in SEEDS]
    assert [(r.success, r.stop_reason) for r in first] == [(False, "step_limit")] * 2
    failures = [FailureCase.from_result(r) for r in first]
    assert failures[0].actions and failures[0].final_observation

    store = MemoryStore.in_memory(embedder)
    kept = gated_update(store, SUBJECT, ADVICE + ".")
    assert kept.kept, kept.reason
    assert (kept.old_outcomes, kept.new_outcomes) == ([False, False], [True, True])
    (note_id,) = kept.note_ids
    # The agent on the real store now wins: its planner retrieved the kept note by task.
    won = play(1, store)
    assert won.success and note_id in won.memories_used

    # A revision with the same subject merges into the note and drops the advice: it loses
    # both re-runs, and the note comes back exactly as it was.
    before = snapshot(store)
    idle = "Look around the kitchen a few more times before acting."
    worse = gated_update(store, SUBJECT, idle)
    assert worse.merged == [note_id] and worse.created == []
    assert (worse.wins, worse.losses, worse.kept) == (0, 2, False)
    assert snapshot(store) == before
    assert play(2, store).success

    before = snapshot(store)  # the win above voted for the note
    # A new note on another subject changes nothing (the useful note is retrieved either
    # way): no win, so it is rolled back too.
    same = gated_update(store, "looping on the look command", idle)
    assert len(same.created) == 1 and same.merged == []
    assert (same.old_outcomes, same.new_outcomes) == ([True, True], [True, True])
    assert not same.kept and snapshot(store) == before
