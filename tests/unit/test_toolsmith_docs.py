"""DRAFT doc refinement, macro replay on the toy game, and the convergence metric."""

from __future__ import annotations

import pytest

from agent.llm.scripted import ScriptedLLM
from benchmarks.envs.base import Env
from benchmarks.envs.toy import ToyEnv
from memory import HashingEmbedder
from toolsmith import (
    ConvergenceCounter,
    InProcessToolRegistry,
    Tool,
    Toolsmith,
    ToolsmithConfig,
    ToolUse,
    classify,
    replay_macro,
    replay_score,
)
from toolsmith.docs import DocRewrite

STEPS = ["take key", "open chest"]


def toy(env_id: str, seed: int) -> Env:
    assert env_id == "toy:keys"
    return ToyEnv(seed)


def smith_with_macro(llm: ScriptedLLM | None = None, every: int = 3) -> Toolsmith:
    smith = Toolsmith(
        InProcessToolRegistry(HashingEmbedder()), ToolsmithConfig(doc_every=every), llm=llm
    )
    smith.registry.register(
        Tool(name="m", kind="macro", doc="Runs, in order: take key; open chest", steps=STEPS)
    )
    return smith


def stopped(context: str) -> ToolUse:
    return ToolUse(
        name="m", actions_run=["take key"], planned=STEPS, completed=False, context=context
    )


def test_classify_uses() -> None:
    assert (
        classify(ToolUse(name="m", actions_run=[], planned=STEPS, completed=False)).kind
        == "not_admissible"
    )
    fb = classify(stopped("You are in the attic."))
    assert fb.kind == "stopped_early" and fb.failed
    assert fb.detail == "stopped after 1/2 steps: 'open chest' could not run"
    assert fb.context == "You are in the attic."
    done = ToolUse(name="m", actions_run=STEPS, planned=STEPS, completed=True)
    assert classify(done).kind == "no_reward"
    assert classify(done.model_copy(update={"reward": 2.0})).kind == "worked"
    err = ToolUse(name="m", actions_run=[], completed=False, error="timed out after 5s")
    assert classify(err).detail == "error: timed out after 5s"
    lost = done.model_copy(update={"reward": 1.0, "lost": True})
    fb = classify(lost)
    assert fb.kind == "lost" and fb.failed and not lost.succeeded
    assert fb.detail == "the game was lost after 'open chest'"


def test_doc_rewritten_without_llm_after_n_failures_with_history() -> None:
    smith = smith_with_macro()
    smith.record(
        ToolUse(
            name="m", actions_run=STEPS, planned=STEPS, completed=True, reward=2, context="cellar"
        )
    )
    smith.record(stopped("You are in the attic."))
    smith.record(stopped("You are in the hall."))
    assert smith.registry.get("m").version == 1  # type: ignore[union-attr]
    new = smith.record(stopped("You are in the study."))
    assert new is not None and new.version == 2
    assert new.change == "doc refined from 3 failures (rules)"
    lines = new.doc.splitlines()
    assert lines[0] == "Runs, in order: take key; open chest"
    fail = "stopped after 1/2 steps: 'open chest' could not run"
    assert lines[1].startswith(f"Fails when: {fail} (at: You are in the study.)")
    assert "attic" in lines[1] and "hall" in lines[1]
    assert lines[2] == "Works when: ran with reward 2 (at: cellar)"
    assert new.feedback == [] and new.uses == 4
    history = smith.registry.versions("m")
    assert [t.version for t in history] == [1, 2]
    assert history[0].doc == "Runs, in order: take key; open chest"
    # The old version keeps the uses that led to the rewrite, for inspection.
    assert [f.kind for f in history[0].feedback] == ["worked"] + ["stopped_early"] * 3
    # The next rewrite keeps earlier contexts and adds new ones (capped).
    for room in ("garden", "pantry", "library"):
        last = smith.record(stopped(f"You are in the {room}."))
    assert last is not None and last.version == 3 and "library" in last.doc and "study" in last.doc
    assert smith.registry.rollback("m", 1).doc == "Runs, in order: take key; open chest"


def test_doc_rewritten_by_llm_when_its_answer_is_usable() -> None:
    good = DocRewrite(doc="Takes the key and opens the chest; use it only in the chest room.")
    llm = ScriptedLLM([good])
    smith = smith_with_macro(llm, every=2)
    smith.record(stopped("attic"))
    new = smith.record(stopped("hall"))
    assert new is not None and new.change == "doc refined from 2 failures (llm)"
    assert new.doc.splitlines()[0] == good.doc
    assert new.doc.splitlines()[1].startswith("Fails when: ")
    assert "It failed: stopped after 1/2 steps" in llm.prompts[0]


@pytest.mark.parametrize(
    ("junk", "why"),
    [
        ("!!! ??? ### &&& %%% key", "LLM answer rejected: mostly not letters"),
        ("banana banana banana banana", "says nothing about the tool"),
    ],
)
def test_junk_llm_doc_falls_back_to_rules(junk: str, why: str) -> None:
    smith = smith_with_macro(ScriptedLLM([DocRewrite(doc=junk)]), every=1)
    new = smith.record(stopped("attic"))
    assert new is not None and why in new.change
    assert new.doc.splitlines()[0] == "Runs, in order: take key; open chest"
    # An answer that does not parse at all: rules too.
    smith2 = smith_with_macro(ScriptedLLM(["{"] * 4), every=1)
    again = smith2.record(stopped("attic"))
    assert again is not None and "LLM answer invalid" in again.change


def test_replay_score_and_macro_replay_on_toy_env() -> None:
    walk = ToyEnv(5).walkthrough
    assert walk == ["take key", "go east", "open chest"]
    assert replay_score(toy, "toy:keys", 5, walk) == 2.0
    assert replay_score(toy, "toy:keys", 5, walk[:-1]) == 1.0
    same = replay_macro(toy, "toy:keys", 5, walk, 0, 2, ["take key", "go east"])
    assert same.score == 2.0 and same.ran == ["take key", "go east"] and same.stopped is None
    worse = replay_macro(toy, "toy:keys", 5, walk, 0, 1, ["look"])
    assert worse.score == 0.0
    # The chest is in the next room: the macro stops at once, the episode goes on without it.
    blocked = replay_macro(toy, "toy:keys", 5, walk, 0, 1, ["open chest", "take key"])
    assert blocked.stopped == "step 1 'open chest' could not run (not admissible)"
    assert blocked.ran == [] and blocked.score == 0.0


def test_mined_toy_macro_is_validated_by_replay() -> None:
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=toy)
    walk = ToyEnv(5).walkthrough
    smith.observe("e1", "toy:keys", walk, True, seed=5, score=2.0)
    new = smith.observe("e2", "toy:keys", walk, True, seed=5, score=2.0)
    assert new and all(t.status == "active" for t in new)
    assert new[0].validation == "replayed on e1 (seed 5): score 2 >= original 2"
    # Actions a tool ran are replayed but not mined again.
    assert (
        smith.observe(
            "e3", "toy:keys", ["look", *walk], True, seed=5, from_tool=[True] * (len(walk) + 1)
        )
        == []
    )


def test_convergence_batches() -> None:
    c = ConvergenceCounter(batch_size=2)
    c.add_synthesized(2)
    c.add_invocation()
    assert c.end_episode() is None
    batch = c.end_episode()
    assert batch is not None and tuple(batch) == (2, 2, 1, 2.0) and batch.ratio == 2.0
    for _ in range(4):
        c.add_invocation()
    c.end_episode()
    c.end_episode()
    c.add_invocation()
    c.end_episode()
    assert c.flush() == (5, 0, 1, 0.0)
    assert [b.ratio for b in c.batches] == [2.0, 0.0, 0.0]
    assert (c.synthesized, c.invocations, c.ratio) == (2, 6, 2 / 6)
    assert c.table()[1].split() == ["2", "2", "1", "2.000"]
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), ToolsmithConfig(batch_size=1))
    smith.observe("e1", "x", ["a"], False)
    assert smith.counter.batches == [(1, 0, 0, None)]


def test_no_reward_is_a_failure_only_for_a_tool_that_paid_before() -> None:
    smith = smith_with_macro(every=2)
    ran = ToolUse(name="m", actions_run=STEPS, planned=STEPS, completed=True, context="hall")
    smith.record(ran)
    smith.record(ran)
    tool = smith.registry.get("m")
    assert tool is not None and tool.version == 1 and tool.pending_failures == 0
    smith.record(ran.model_copy(update={"reward": 1.0}))
    smith.record(ran)
    new = smith.record(ran)
    assert new is not None and new.version == 2
    assert new.doc.splitlines()[1] == "Fails when: ran without reward (at: hall)"


def test_a_rewrite_that_changes_nothing_makes_no_version() -> None:
    smith = smith_with_macro(every=1)
    assert smith.record(stopped("attic")) is not None
    again = smith.record(stopped("attic"))  # the same failure in the same place
    assert again is not None and again.version == 2 and again.feedback == []
