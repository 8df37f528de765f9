"""The step-value benchmark script plays, learns and reports, and refuses bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from benchmarks import values_bench
from benchmarks.envs.base import Env, StepResult
from benchmarks.envs.registry import make_env
from benchmarks.harness.spec import parse_seeds
from memory.values import ValueParams


def _held_out_wins(capsys: pytest.CaptureFixture[str], train: str) -> int:
    argv = ["--env", "toy:keys", "--train-seeds", train, "--test-seeds", "100-109"]
    assert values_bench.main([*argv, "--runs", "2", "--max-steps", "6", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    run = json.loads(line)
    assert run["run"] == 2 and len(run["held_out"]) == 10
    assert len(run["train"]) == len(parse_seeds(train))
    return sum(e["won"] for e in run["held_out"])


def _random_wins(seed: int) -> int:
    """Held-out wins of uniformly random admissible actions (same seeds and step limit)."""
    rng, wins = random.Random(seed), 0
    for game in range(100, 110):
        env = make_env("toy:keys", game, Path("unused"))
        obs = env.reset()
        admissible, won = obs.admissible, False
        for _ in range(6):
            res = env.step(admissible[rng.randrange(len(admissible))])
            admissible, won = res.admissible, res.info.won
            if res.done:
                break
        wins += won
    return wins


def test_values_bench_learns_on_toy_games(capsys: pytest.CaptureFixture[str]) -> None:
    # After 20 training games the greedy values win most held-out games; random
    # admissible actions win few of them within the same 6 steps.
    assert _held_out_wins(capsys, "0-19") >= 6
    assert max(_random_wins(seed) for seed in range(3)) <= 3


def test_values_bench_learns_with_the_parameters_of_the_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A win that costs 2 (its reward is 1): the values learn to stay clear of the winning
    # move, so greedy play wins none of the games it wins with the defaults.
    monkeypatch.setenv("EVOLVENT_MEMORY__VALUES__WIN_BONUS", "-2")
    assert _held_out_wins(capsys, "0-19") == 0
    monkeypatch.setenv("EVOLVENT_MEMORY__VALUES__GAMMA", "1.5")
    assert values_bench.main(["--env", "toy:keys", "--runs", "1"]) == 2
    assert "memory.values.gamma" in capsys.readouterr().err


def test_values_bench_rejects_bad_seeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert values_bench.main(["--env", "toy:keys", "--train-seeds", "0-x"]) == 2
    assert "bad seed range" in capsys.readouterr().err


def test_demonstrations_teach_the_step_values(tmp_path: Path) -> None:
    # tools_bench --warmup: walkthroughs of other seeds, learned as won episodes and marked
    # as demonstrations, make the greedy values win held-out games that random play loses.
    from benchmarks.tools_bench import demonstrate, walkthrough
    from memory import HashingEmbedder, MemoryStore

    # Discovery off: it is an aid to self-play's exploration; here only what the five
    # walkthroughs' rewards teach is measured.
    params = ValueParams(discovery_reward=0.0)
    values = MemoryStore.in_memory(HashingEmbedder(), values=params).values
    walks = {s: walkthrough("toy:keys", s, tmp_path) for s in range(5)}
    assert demonstrate(values, "toy:keys", walks, tmp_path) == 5
    assert values.episodes() == 5
    ids = {r.provenance.episode_id for r in values.backend.scan(values.collection)}
    assert ids == {f"demonstration:toy:keys:{s}" for s in range(5)}
    played = [values_bench.play(values, "toy:keys", s, tmp_path, 6, None) for s in range(100, 110)]
    assert sum(e.won for e in played) >= 6 > 3 >= _random_wins(0)


def test_greedy_play_leaves_out_what_changed_nothing_as_the_agent_does(tmp_path: Path) -> None:
    from memory import HashingEmbedder, MemoryStore
    from memory.records import Provenance
    from memory.textfeatures import EpisodeText, analyse
    from memory.values import ValueStep

    # Values that rate "look" above everything: greedy play would look around forever.
    values = MemoryStore.in_memory(HashingEmbedder()).values
    obs = make_env("toy:keys", 100, tmp_path).reset()
    view = analyse(EpisodeText.start(obs.task, obs.text), "look")
    step = ValueStep(state="s", action="look", reward=1.0, features=view.features)
    values.learn([step], won=True, lost=False, provenance=Provenance(episode_id="e"))

    taken: list[str] = []
    original = make_env

    def recording(env_id: str, seed: int, games: Path) -> Env:
        env = original(env_id, seed, games)
        step = env.step

        def recorded(action: str) -> StepResult:
            taken.append(action)
            return step(action)

        setattr(env, "step", recorded)  # noqa: B010 - mypy refuses assigning to a method
        return env

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(values_bench, "make_env", recording)
        values_bench.play(values, "toy:keys", 100, tmp_path, 4, None, skip_no_ops=False)
        assert taken == ["look"] * 4
        taken.clear()
        values_bench.play(values, "toy:keys", 100, tmp_path, 4, None)
    # "look" left the text as it was: it is not offered again until the text changes.
    assert len(taken) == 4 and taken[0] == "look" and taken[1] != "look", taken
    assert taken != ["look"] * 4
