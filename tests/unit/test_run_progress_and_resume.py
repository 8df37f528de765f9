"""Progress where stderr is not a terminal (a line per episode), the run id an interrupted
`evolvent run` names, and `evolvent runs`, which lists the runs to resume."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from agent.cli import app
from agent.episode_lines import EpisodeLines, duration
from agent.result import EpisodeResult
from benchmarks.harness.endpoint import instant_endpoint


def result(success: bool, steps: int, wall_s: float) -> EpisodeResult:
    return EpisodeResult(
        thread_id="t",
        env="toy:keys",
        seed=0,
        task="",
        success=success,
        score=1.0 if success else 0.0,
        max_score=1.0,
        steps=steps,
        actions=steps,
        failed_steps=0,
        stop_reason="won" if success else "max_steps",
        prompt_tokens=0,
        completion_tokens=0,
        tokens=0,
        wall_s=wall_s,
        llm_s=0.0,
        env_s=0.0,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_as_people_write_them() -> None:
    assert [duration(s) for s in (0, 44.6, 60, 245, 3599, 3600, 7384)] == [
        "0s",
        "45s",
        "1m 00s",
        "4m 05s",
        "59m 59s",
        "1h 00m",
        "2h 03m",
    ]


def test_a_line_per_episode_with_the_time_left_when_not_a_terminal() -> None:
    buf = io.StringIO()
    clock = Clock()
    lines = EpisodeLines(Console(file=buf, force_terminal=False, width=60), 5, clock=clock)
    lines.counted()  # finished before this run: counted, not told, not in the estimate
    clock.now += 42  # 12 s of start-up (the LLM, the stores): not a cost of each episode
    lines.finished("episode 2 (seed 1)", result(True, 9, 29.97))
    clock.now += 10
    lines.finished("episode 3 (seed 2)", result(False, 20, 10.0))
    clock.now += 20
    lines.finished("episode 4 (seed 3)", result(False, 20, 20.0))
    lines.finished("episode 5 (seed 4)", result(True, 3, 0.04))
    assert buf.getvalue().splitlines() == [
        # a long line is not wrapped at the console's width: one episode, one line
        "[2/5] episode 2 (seed 1): won, score 1/1 in 9 steps, 30.0 s; about 1m 30s left",
        "[3/5] episode 3 (seed 2): not won, score 0/1 in 20 steps, 10.0 s; about 40s left",
        "[4/5] episode 4 (seed 3): not won, score 0/1 in 20 steps, 20.0 s; about 20s left",
        "[5/5] episode 5 (seed 4): won, score 1/1 in 3 steps, 0.0 s",
    ]


def test_nothing_extra_on_a_terminal_where_the_bars_are_drawn() -> None:
    buf = io.StringIO()
    lines = EpisodeLines(Console(file=buf, force_terminal=True), 2)
    lines.finished("episode 1 (seed 0)", result(True, 3, 1.0))
    assert buf.getvalue() == ""


def test_evolvent_run_tells_each_episode_in_a_log(evolvent_home: Path) -> None:
    runner = CliRunner()
    with instant_endpoint() as url:
        args = ["run", "--env", "toy:keys", "--episodes", "3", "--max-steps", "4"]
        r = runner.invoke(app, [*args, "--llm-url", url, "--thread-id", "logged"])
        assert r.exit_code == 0, r.output
        assert "run logged: 3 episodes, toy:keys from seed 0" in r.stderr.splitlines()
        told = [ln for ln in r.stderr.splitlines() if ln.startswith("[")]
        assert [re.sub(r": (won|not won), score \d/2 in \d steps, .*", "", ln) for ln in told] == [
            "[1/3] episode 0 (seed 0)",  # episode i is the thread logged-i
            "[2/3] episode 1 (seed 1)",
            "[3/3] episode 2 (seed 2)",
        ]
        assert ["left" in ln for ln in told] == [True, True, False]
        # Resuming a finished run plays nothing and tells nothing new.
        again = runner.invoke(app, ["run", "--resume", "logged", "--llm-url", url])
        assert again.exit_code == 0, again.output
        assert "] episode" not in again.stderr


def test_an_interrupted_run_names_the_id_that_resumes_it(evolvent_home: Path) -> None:
    """Ctrl-C in the first episode of a run whose id was generated: the message gives it."""
    from agent.agent import Agent

    def ctrl_c(*args: object, **kwargs: object) -> EpisodeResult:
        raise KeyboardInterrupt

    runner = CliRunner()
    with instant_endpoint() as url:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Agent, "run", ctrl_c)
            args = ["run", "--env", "toy:keys", "--episodes", "2", "--llm-url", url]
            r = runner.invoke(app, args)
        assert r.exit_code == 130
        (run_id,) = re.findall(r"^run (run-[0-9a-f-]+): 2 episodes, toy:keys", r.stderr, re.M)
        assert r.stderr.splitlines()[-1] == (
            "interrupted: every finished step is checkpointed; continue with "
            f"`evolvent run --resume {run_id}`"
        )
        # `evolvent runs` finds it (the id is also there when the message is lost).
        listed = runner.invoke(app, ["runs"])
        assert listed.exit_code == 0, listed.output
        assert re.search(
            rf"{run_id} .* toy:keys from seed 0 .* 0/2 finished .* unfinished", listed.stdout
        )
        assert f"finish one with `evolvent run --resume {run_id}`" in listed.stderr
        again = runner.invoke(app, ["run", "--resume", run_id, "--llm-url", url, "--json"])
        assert again.exit_code == 0, again.output
        assert len(again.stdout.splitlines()) == 2  # both episodes played on resume
        other = runner.invoke(
            app, ["run", "--task", "Say hi.", "--llm-url", url, "--thread-id", "hi"]
        )
        assert other.exit_code == 0, other.output
    rows = [json.loads(x) for x in runner.invoke(app, ["runs", "--json"]).stdout.splitlines()]
    assert [(r["run_id"], r["finished"], r["spec"]["episodes"]) for r in rows] == [
        ("hi", 1, 1),  # newest first
        (run_id, 2, 2),
    ]
    assert rows[0]["spec"]["task"] == "Say hi."
    listed = runner.invoke(app, ["runs", "--limit", "1"])
    assert "hi " in listed.stdout and run_id not in listed.stdout and "a text task" in listed.stdout
    assert "finish one with" not in listed.stderr  # nothing unfinished


def test_runs_on_a_fresh_home_lists_nothing_and_creates_nothing(evolvent_home: Path) -> None:
    r = CliRunner().invoke(app, ["runs"])
    assert r.exit_code == 0 and r.stderr.startswith("no runs in ")
    assert not evolvent_home.exists()
    assert CliRunner().invoke(app, ["runs", "--json"]).stdout == ""
