"""The scoring benchmark replays what it played, the same way every time, and refuses bad input."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from benchmarks import scoring_bench


def _run(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    argv = ["--env", "toy:keys", "--seeds", "0-5", "--max-steps", "8", "--rounds", "2"]
    assert scoring_bench.main([*argv, *extra, "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_scoring_bench_times_every_admissible_action_of_every_step(
    capsys: pytest.CaptureFixture[str], evolvent_home: Path
) -> None:
    first = _run(capsys)
    assert first["episodes"] == 6 and 0 < first["steps"] <= 6 * 8
    assert first["analyses"] > first["steps"]  # several admissible actions a step
    assert 0 < first["us_per_analysis_best"] <= first["us_per_analysis"]
    # The same games and exploration seed: the same record, scored the same.
    assert _run(capsys)["digest"] == first["digest"]
    assert _run(capsys, "--seed", "7")["digest"] != first["digest"]


def test_a_replay_scores_what_was_played(evolvent_home: Path) -> None:
    episodes, acting = scoring_bench.record("toy:keys", [0, 1], Path("unused"), 6, random.Random(0))
    assert [len(e.steps) for e in episodes] and all(
        s.action in s.admissible for e in episodes for s in e.steps
    )
    spent, analyses, digest = scoring_bench.replay(episodes, acting)
    assert analyses == sum(len(s.admissible) for e in episodes for s in e.steps)
    assert spent > 0 and (analyses, digest) == scoring_bench.replay(episodes, acting)[1:]
    # The digest covers the scores: other weights, another digest.
    other = acting.__class__(
        acting.weights + 1.0,
        acting.signatures,
        acting.recent,
        acting.episodes,
        acting.support,
        acting.params,
    )
    assert scoring_bench.replay(episodes, other)[2] != digest


def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], evolvent_home: Path
) -> None:
    assert scoring_bench.main(["--env", "toy:keys", "--rounds", "0"]) == 2
    assert "--rounds" in capsys.readouterr().err
    assert scoring_bench.main(["--env", "nope:x", "--seeds", "0"]) == 2
