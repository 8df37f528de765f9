"""The Python API on a user's mistakes: clear errors, nothing half-done, nothing held."""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent import Agent, load_settings
from agent.errors import ConfigError, EnvProtocolError, EvolventError, ResumeError
from agent.llm.scripted import Answer, ScriptedLLM
from agent.result import StepView
from benchmarks.envs.base import Env, Observation, StepInfo, StepResult
from memory import HashingEmbedder


def first_option(kind: str, prompt: str, about: Sequence[str] | type[BaseModel] | None) -> Answer:
    if kind == "choose":
        assert isinstance(about, list)
        return str(about[0])
    if kind == "structured":
        return {}
    return "count up"


class Counter:
    """A user's environment: ``inc`` three times wins."""

    env_id = "custom:counter"
    seed = 0

    def __init__(self, reward: float = 1.0) -> None:
        self.n = 0
        self.reward = reward
        self.closed = 0

    def reset(self) -> Observation:
        self.n = 0
        return Observation(task="count to 3", text="at 0", admissible=["inc", "wait"])

    def step(self, action: str) -> StepResult:
        self.n += action == "inc"
        won = self.n >= 3
        info = StepInfo(score=float(self.n), max_score=3.0, won=won)
        reward = self.reward if action == "inc" else 0.0
        return StepResult(
            text=f"at {self.n}", admissible=["inc", "wait"], reward=reward, done=won, info=info
        )

    def close(self) -> None:
        self.closed += 1


def agent(home: Path, **settings: object) -> Agent:
    s = load_settings(None, home=str(home), **settings)  # type: ignore[arg-type]
    return Agent(s, llm=ScriptedLLM(responder=first_option), embedder=HashingEmbedder())


def test_limits_below_one_and_wrong_types_are_refused(evolvent_home: Path) -> None:
    with agent(evolvent_home) as a:
        for kwargs, error, message in [
            ({"max_steps": 0}, ConfigError, "max_steps must be at least 1, not 0"),
            ({"token_budget": -3}, ConfigError, "token_budget must be at least 1, not -3"),
            ({"max_steps": "3"}, TypeError, "max_steps must be an int, not str"),
        ]:
            with pytest.raises(error, match=message):
                a.run("toy:keys", seed=1, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="settings must be a Settings"):
        Agent({"home": str(evolvent_home)})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="values must be a ValueSnapshot"):
        Agent(load_settings(None), llm=ScriptedLLM([]), values={})  # type: ignore[arg-type]


def test_a_failed_constructor_releases_what_it_opened(evolvent_home: Path) -> None:
    (evolvent_home / "cp").mkdir(parents=True)  # not a database file
    with pytest.raises(ConfigError, match="checkpoint"):
        agent(evolvent_home, checkpoint_db=str(evolvent_home / "cp"))
    gc.collect()
    # Another process can write the memory store: the writer lock was let go (it was held
    # until this process ended).
    opens = (
        "from memory import HashingEmbedder, MemoryStore; "
        f"MemoryStore.open(path={str(evolvent_home / 'memory')!r}, embedder=HashingEmbedder())"
        ".close()"
    )
    done = subprocess.run([sys.executable, "-c", opens], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-500:]


def test_a_closed_agent_says_so(evolvent_home: Path) -> None:
    a = agent(evolvent_home)
    a.close()
    a.close()
    with pytest.raises(EvolventError, match="this agent is closed"):
        a.run("toy:keys", seed=1)


def test_an_episode_is_learned_from_once(evolvent_home: Path) -> None:
    with agent(evolvent_home) as a:
        played = a.play("toy:keys", seed=4, max_steps=4)
        a.learn_from(played)
        before = a.memory.stats()
        with pytest.raises(ResumeError, match="was learned from already"):
            a.learn_from(played)
        assert a.memory.stats() == before
        with pytest.raises(TypeError, match="not EpisodeResult"):
            a.learn_from(a.run("toy:keys", seed=5, max_steps=2))  # type: ignore[arg-type]


def test_a_users_env_that_breaks_the_protocol_is_named(evolvent_home: Path) -> None:
    class Dicts(Counter):
        def reset(self) -> Observation:
            return {"task": "x"}  # type: ignore[return-value]

    class NoClose:
        env_id, seed = "custom:x", 0

        def reset(self) -> None: ...

        def step(self, action: str) -> None: ...

    class Broken(Counter):
        def reset(self) -> Observation:
            raise RuntimeError("no game file")

    with agent(evolvent_home) as a:
        with pytest.raises(EnvProtocolError, match=r"Dicts.reset\(\) returned dict, not an Obs"):
            a.run(Dicts())
        with pytest.raises(EnvProtocolError, match=r"step\('inc'\) returned a reward of nan"):
            a.run(Counter(reward=float("nan")))
        with pytest.raises(TypeError, match="NoClose is not an Env: it has no close"):
            a.run(NoClose())  # type: ignore[arg-type]
        broken = Broken()
        with pytest.raises(RuntimeError, match="no game file"):
            a.run(broken)
        assert broken.closed == 1  # closed on every path
        assert a.run(Counter()).success


def test_an_episode_on_a_users_env_resumes_with_that_env(evolvent_home: Path) -> None:
    class Killed(Exception):
        pass

    def die_after_one(step: StepView) -> None:
        raise Killed

    with agent(evolvent_home) as a:
        with pytest.raises(Killed):
            a.run(Counter(), thread_id="c1", on_step=die_after_one)
        with pytest.raises(ResumeError, match=r"resume\(thread_id, env=\.\.\.\)"):
            a.resume("c1")
        with pytest.raises(ResumeError, match="was played on custom:counter, not toy:keys"):
            a.resume("c1", env=_toy())
        done = a.resume("c1", env=Counter())
        assert done.success and done.steps == 3


def _toy() -> Env:
    from benchmarks.envs.toy import ToyEnv

    return ToyEnv(1)
