from __future__ import annotations

import pytest

from memory.actions import ActionMemory, ActionParams, StepSample, discounted_returns
from memory.embeddings import HashingEmbedder
from memory.inprocess import InProcessBackend


@pytest.fixture
def mem() -> ActionMemory:
    emb = HashingEmbedder()
    return ActionMemory(InProcessBackend(emb.dim), emb, "t__action", ActionParams())


def test_returns_are_discounted() -> None:
    assert discounted_returns([0.0, 0.0, 1.0], 0.5) == [0.25, 0.5, 1.0]


def test_winning_actions_rank_first_and_only_admissible(mem: ActionMemory) -> None:
    state = "you are in the kitchen. there is a fridge and a knife here"
    mem.learn([StepSample(state=state, action="take knife", reward=1.0)], success=True)
    mem.learn([StepSample(state=state, action="open fridge", reward=0.0)], success=False)
    props = mem.propose(state, ["open fridge", "take knife", "look"])
    assert [p.action for p in props] == ["take knife", "open fridge"]
    assert props[0].value == pytest.approx(
        2.0 / 1.5, rel=1e-5
    )  # (reward 1 + win bonus 1), prior 0.5
    assert props[1].value == pytest.approx(-1.0 / 1.5, rel=1e-5)
    assert mem.propose(state, ["look"]) == []


def test_same_state_action_is_updated_not_duplicated(mem: ActionMemory) -> None:
    s = "a dark room with a chest"
    (first,) = mem.learn([StepSample(state=s, action="open chest", reward=0.0)], success=True)
    (again,) = mem.learn([StepSample(state=s, action="open chest", reward=0.0)], success=False)
    assert first == again and mem.count() == 1
    (p,) = mem.propose(s, ["open chest"])
    assert p.value == pytest.approx((1.0 + 0.3 * (-1.0 - 1.0)) / 1.5, rel=1e-5)


def test_unrelated_states_propose_nothing(mem: ActionMemory) -> None:
    mem.learn([StepSample(state="garden with roses", action="go east", reward=1.0)], True)
    assert mem.propose("spaceship engine room quantum drive", ["go east"]) == []
