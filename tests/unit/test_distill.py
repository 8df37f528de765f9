"""Distilled experiences: workflows with slots, junk-safe insights, votes, consolidation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from pydantic import BaseModel

from agent.llm.scripted import Answer, ScriptedLLM
from memory import HashingEmbedder, MemoryStore
from memory.distill import DistillParams, EpisodeDigest, ExperienceDistiller, Insights
from memory.records import MemoryRecord
from memory.workflows import extract_workflow

COOK = "cook a delicious meal from the recipe in the cookbook"
GARDEN = "water every plant in the garden with the watering can"

OVEN = [
    "take red potato from counter",
    "cook red potato with oven",
    "take knife from counter",
    "slice red potato with knife",
    "prepare meal",
    "eat meal",
]
STOVE = [
    "look",
    "take red potato from counter",
    "cook red potato with stove",
    "inventory",
    "take knife from counter",
    "dice red potato with knife",
    "prepare meal",
    "eat meal",
]
FAILED = ["look", "take knife from counter", "eat knife", "look"]


def digest(n: int, task: str, actions: Sequence[str], success: bool) -> EpisodeDigest:
    return EpisodeDigest(
        episode_id=f"ep-{n}",
        task=task,
        actions=list(actions),
        success=success,
        score=5.0 if success else 1.0,
        max_score=5.0,
        env_id="textworld:cooking",
        seed=n,
    )


def llm_saying(*insights: str) -> ScriptedLLM:
    def respond(kind: str, prompt: str, about: Sequence[str] | type[BaseModel] | None) -> Answer:
        assert kind == "structured" and about is Insights
        return {"insights": list(insights)}

    return ScriptedLLM(responder=respond)


def distiller(llm: ScriptedLLM, **params: Any) -> tuple[ExperienceDistiller, MemoryStore]:
    store = MemoryStore.in_memory(HashingEmbedder())
    return ExperienceDistiller(store.experiences, llm, DistillParams(**params)), store


def records(store: MemoryStore) -> list[MemoryRecord]:
    return list(store.backend.scan(store.experiences.collection))


def test_workflow_is_the_common_subsequence_with_slots() -> None:
    flow = extract_workflow([OVEN, STOVE])
    assert flow is not None and flow.support == 2
    assert flow.steps == [
        "take red potato from counter",
        "cook red potato with {X}",
        "take knife from counter",
        "{Y} red potato with knife",
        "prepare meal",
        "eat meal",
    ]
    assert flow.slots == {"X": ["oven", "stove"], "Y": ["slice", "dice"]}
    # The same varying object in two steps gets one slot name.
    carrot = [a.replace("red potato", "carrot") for a in OVEN]
    linked = extract_workflow([["take apple", "cook apple"], ["take pear", "cook pear"]])
    assert linked is not None and linked.steps == ["take {X}", "cook {X}"]
    # Actions of different lengths, or that differ in most words, never align.
    differ = extract_workflow([OVEN, carrot])
    assert differ is not None
    assert differ.steps == ["take knife from counter", "prepare meal", "eat meal"]
    assert extract_workflow([["open door"], ["eat apple"]]) is None
    assert extract_workflow([OVEN]) is None


def test_distills_every_n_episodes_once_there_is_something_to_compare() -> None:
    llm = llm_saying("Cook the ingredient before slicing it.")
    dist, _ = distiller(llm, every=3)
    assert dist.observe(digest(1, COOK, FAILED, False)) is None
    assert dist.observe(digest(2, COOK, FAILED, False)) is None
    # Three failures: time, but nothing to learn from yet, so the buffer keeps growing.
    assert dist.observe(digest(3, COOK, FAILED, False)) is None and llm.calls == []
    report = dist.observe(digest(4, COOK, OVEN, True))
    assert report is not None and report.episodes == ["ep-1", "ep-2", "ep-3", "ep-4"]
    assert report.workflows == [] and len(report.insights) == 1  # one success: no workflow
    assert dist.pending == [] and len(llm.calls) == 1
    assert "Success 1" in llm.prompts[0] and "Failure 3" in llm.prompts[0]


def test_workflows_and_insights_are_stored_with_provenance() -> None:
    llm = llm_saying("Cook the ingredient before slicing it.", "Take the knife before cutting.")
    dist, store = distiller(llm, every=4)
    eps = [
        digest(1, COOK, OVEN, True),
        digest(2, GARDEN, ["water plant"], False),
        digest(3, COOK, FAILED, False),
        digest(4, COOK, STOVE, True),
    ]
    reports = [dist.observe(e) for e in eps]
    report = reports[-1]
    assert reports[:3] == [None, None, None] and report is not None
    assert report.groups == 2 and len(report.workflows) == 1 and len(report.insights) == 2
    assert len(llm.calls) == 1  # the garden group has no success: nothing to compare
    wf = store.get(report.workflows[0])
    assert wf is not None and "cook red potato with {X}" in wf.text and "oven|stove" in wf.text
    assert wf.meta["type"] == "workflow" and wf.meta["evidence"] == 2
    assert wf.meta["episodes"] == ["ep-1", "ep-4"] and wf.meta["slots"]["X"] == ["oven", "stove"]
    assert wf.provenance.verifier == "distilled" and wf.provenance.outcome == "success"
    for iid in report.insights:
        rec = store.get(iid)
        assert rec is not None and rec.meta["type"] == "insight" and rec.meta["evidence"] == 3
        assert rec.provenance.verifier == "distilled"
        assert rec.meta["episodes"] == ["ep-1", "ep-3", "ep-4"]
    # The planner's retrieval by task finds them.
    assert {h.id for h in dist.retrieve(COOK, k=5)} == {*report.workflows, *report.insights}


def test_insights_are_junk_safe() -> None:
    long = "Always read the cookbook first " + "and then keep reading it " * 30
    llm = llm_saying(
        "",
        "   ",
        "1. Read the cookbook first.",
        "read the cookbook FIRST",
        "ok",
        long,
        "Take the knife before cutting.",
        "Prepare the meal only when every ingredient is ready.",
    )
    dist, store = distiller(llm, max_insights=3, insight_max_chars=80)
    for e in [digest(1, COOK, OVEN, True), digest(2, COOK, FAILED, False)]:
        dist.observe(e)
    report = dist.distill()
    texts = [r.text for r in store.backend.get(store.experiences.collection, report.insights)]
    assert texts[0] == "Read the cookbook first."
    assert texts[1].startswith("Always read the cookbook first") and len(texts[1]) <= 80
    assert texts[2] == "Take the knife before cutting."


def test_unparseable_insights_cost_nothing_but_the_insights() -> None:
    llm = ScriptedLLM(responder=lambda kind, prompt, about: "Insight: cook it. }")
    dist, store = distiller(llm)
    for e in [digest(1, COOK, OVEN, True), digest(2, COOK, STOVE, True)]:
        dist.observe(e)
    report = dist.distill()
    assert report.invalid_llm == 1 and report.insights == []
    assert len(report.workflows) == 1 and store.experiences.count() == 1


def test_rediscovered_items_merge_and_accumulate_evidence() -> None:
    llm = llm_saying("Cook the ingredient before slicing it.")
    dist, store = distiller(llm)
    assert dist.distill().groups == 0  # nothing buffered: nothing written
    for e in [digest(1, COOK, OVEN, True), digest(2, COOK, STOVE, True)]:
        dist.observe(e)
    a = dist.distill()
    for e in [digest(3, COOK, STOVE, True), digest(4, COOK, OVEN, True)]:
        dist.observe(e)
    b = dist.distill()
    assert a.workflows == b.workflows and a.insights == b.insights
    assert store.experiences.count() == 2
    wf = store.get(a.workflows[0])
    assert wf is not None and wf.meta["evidence"] == 4 and wf.meta["merged"] == 1
    assert wf.meta["episodes"] == ["ep-1", "ep-2", "ep-3", "ep-4"]


def test_votes_and_consolidation_retire_low_utility_items() -> None:
    dist, store = distiller(llm_saying(), retire_q=-2, min_uses=3)
    add = store.experiences.add
    bad = add("bad advice | cook", "Eat the knife.", meta={"type": "insight"})
    young = add("new advice | garden", "Water twice.", meta={"type": "insight"})
    good = add("good advice | plants", "Use the watering can.", meta={"type": "insight"})
    for _ in range(3):
        dist.vote([bad], success=False)
    dist.vote([young], success=False)
    dist.vote([young], success=False)  # q = -2 but only 2 uses: not judged yet
    dist.vote([good, "exp-missing"], success=True)
    rec = store.get(good)
    assert rec is not None and (rec.q, rec.uses, rec.successes) == (1.0, 1, 1)
    report = dist.consolidate()
    assert [r.id for r in report.retired] == [bad] and report.merged == {}
    assert store.get(bad) is None and store.get(young) is not None
    assert store.experiences.count() == 2


def test_consolidation_merges_near_duplicates() -> None:
    dist, store = distiller(llm_saying())
    # Two processes wrote the same insight at once: same key, two records.
    twins = [
        MemoryRecord(
            id=f"exp-twin{i}",
            kind="experience",
            key="read the cookbook | cook a meal",
            text=f"Read the cookbook ({i}).",
            q=float(i),
            uses=2,
            meta={"type": "insight", "evidence": 2, "episodes": [f"ep-{i}"]},
        )
        for i in (1, 2)
    ]
    other = MemoryRecord(
        id="exp-flow",
        kind="experience",
        key="read the cookbook | cook a meal",
        text="Workflow.",
        meta={"type": "workflow"},
    )
    recs = [*twins, other]
    store.backend.upsert(
        store.experiences.collection, recs, HashingEmbedder().embed([r.key for r in recs])
    )
    report = dist.consolidate()
    assert report.merged == {"exp-twin2": "exp-twin1"}  # the older id survives
    kept = store.get("exp-twin1")
    assert kept is not None and store.get("exp-twin2") is None
    assert kept.text == "Read the cookbook (2)."  # the better-voted text
    assert (kept.q, kept.uses, kept.meta["evidence"]) == (3.0, 4, 4)
    assert kept.meta["episodes"] == ["ep-1", "ep-2"]
    assert store.get("exp-flow") is not None  # a workflow never absorbs an insight


@pytest.mark.parametrize("every", [1, 2])
def test_two_successes_are_enough(every: int) -> None:
    dist, _ = distiller(llm_saying("Cook before slicing."), every=every)
    results = [dist.observe(e) for e in [digest(1, COOK, OVEN, True), digest(2, COOK, STOVE, True)]]
    assert results[0] is None and results[1] is not None and results[1].workflows
