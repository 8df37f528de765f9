"""ToyEnv: deterministic per seed, solvable by its walkthrough, tolerant of bad actions."""

from __future__ import annotations

import pytest

from benchmarks.envs import Env, ToyEnv

SEEDS = range(20)


def _walkthrough(env: ToyEnv) -> list[str]:
    walkthrough = env.reset().info.extra["walkthrough"]
    assert isinstance(walkthrough, list)
    return [str(command) for command in walkthrough]


def test_satisfies_env_protocol() -> None:
    env = ToyEnv(seed=0)
    assert isinstance(env, Env)
    assert env.env_id == "toy:keys"
    assert env.seed == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_same_seed_same_game(seed: int) -> None:
    first, second = ToyEnv(seed), ToyEnv(seed)
    assert first.reset() == second.reset()
    for command in _walkthrough(first):
        assert first.step(command) == second.step(command)


def test_seeds_differ() -> None:
    layouts = {(ToyEnv(s).reset().text, tuple(_walkthrough(ToyEnv(s)))) for s in SEEDS}
    assert len(layouts) > 5


@pytest.mark.parametrize("seed", SEEDS)
def test_walkthrough_wins(seed: int) -> None:
    env = ToyEnv(seed)
    obs = env.reset()
    assert obs.info.score == 0 and obs.info.max_score == 2 and not obs.info.won
    total = 0.0
    result = None
    for command in _walkthrough(env):
        assert command in (result.admissible if result else obs.admissible)
        result = env.step(command)
        total += result.reward
    assert result is not None
    assert result.done and result.info.won
    assert result.info.score == result.info.max_score == total == 2


def test_invalid_and_premature_actions() -> None:
    env = ToyEnv(seed=3)
    obs = env.reset()
    result = env.step("dance wildly")
    assert result.reward == 0 and not result.done
    assert "understand" in result.text
    assert result.admissible == obs.admissible
    # Opening the chest before holding the key scores nothing.
    chest_first = [c for c in _walkthrough(env) if c != "take key"]
    env.reset()
    for command in chest_first:
        result = env.step(command)
    assert result.info.score == 0 and not result.info.won


def test_reset_restarts_the_game() -> None:
    env = ToyEnv(seed=5)
    first = env.reset()
    for command in _walkthrough(env):
        env.step(command)
    assert env.reset() == first
