"""The executor and the reflector see the same text context and the same step features."""

from __future__ import annotations

from agent.state import AgentState, StepRecord
from agent.stepmemory import episode_text, value_steps
from memory.textfeatures import EpisodeText, analyse


def _step(i: int, action: str | None, observation: str, reward: float) -> StepRecord:
    return StepRecord(
        index=i,
        action=action,
        observation=observation,
        reward=reward,
        score=0.0,
        done=False,
        tool=None,
        error=None if action else "no valid action",
        source="llm",
        memory_ids=[],
        llm_s=0.0,
        env_s=0.0,
        tokens=0,
    )


STEPS = [
    _step(0, "read card", "The card says:\nslice the red pear\nfry the red pear", 0.0),
    _step(1, None, "", 0.0),  # a failed step: the environment did not move
    _step(2, "take red pear", "You take the red pear.", 1.0),
    _step(3, "slice red pear with knife", "You slice the red pear.", 1.0),
    _step(4, "fry red pear with stove", "You fry the red pear.", 1.0),
]


def _state(steps: list[StepRecord]) -> AgentState:
    return AgentState(task="Follow the card.", first_observation="A card. A red pear.", steps=steps)


def test_value_steps_carry_features_signatures_and_instruction_sources() -> None:
    out = value_steps(_state(STEPS))
    assert [s.action for s in out] == [
        "read card",
        "take red pear",
        "slice red pear with knife",
        "fry red pear with stove",
    ]
    # Slicing and frying carry out lines the answer to the first action (index 0) showed.
    assert [s.source for s in out] == [None, None, 0, 0]
    # New words each answer showed: the card "say", "slice", "fry" (card, red and pear were
    # in the first observation), the take "take", then nothing.
    assert [s.discovered for s in out] == [3, 1, 0, 0]
    ctx = EpisodeText.start("Follow the card.", "A card. A red pear.")
    for step, record in zip(out, [s for s in STEPS if s["action"]], strict=True):
        view = analyse(ctx, step.action)
        assert (step.features, step.signature) == (view.features, view.signature)
        ctx.observe(step.action, record["observation"], record["reward"])


def test_the_executor_context_extended_step_by_step_equals_a_rebuild() -> None:
    known = None
    for n in range(len(STEPS) + 1):
        known = episode_text(_state(STEPS[:n]), known)
        fresh, seen = episode_text(_state(STEPS[:n]))
        assert known[1] == seen == n
        for action in ("slice red pear with knife", "fry red pear with stove", "look"):
            assert analyse(known[0], action) == analyse(fresh, action)
        assert known[0].origins == fresh.origins and known[0].taken == fresh.taken


def test_value_steps_read_from_the_executor_context_equal_a_replay() -> None:
    # The reflector hands over the executor's context, which has seen the steps before the
    # last executor step (or fewer); the rest are observed, none played again.
    replayed = value_steps(_state(STEPS))
    for n in range(len(STEPS) + 1):
        known = episode_text(_state(STEPS[:n]))
        assert value_steps(_state(STEPS), known) == replayed
        # Extended in place to the episode's end, not rebuilt beside it.
        assert known[0].taken == [s.action for s in replayed]
    # A context of a longer episode (not this one's) is not used.
    longer = episode_text(_state([*STEPS, _step(5, "eat red pear", "You eat it.", 1.0)]))
    assert value_steps(_state(STEPS), longer) == replayed
