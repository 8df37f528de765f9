"""A user's ``Env`` object, checked at its boundary.

The environments of the registry are the project's own; an object a user hands to
``Agent.run`` is checked as it answers, so that a wrong return type or a NaN reward is an
``EnvProtocolError`` naming the method and what came back, instead of an ``AttributeError``
deep in the agent or a learned memory that cannot be stored.
"""

from __future__ import annotations

import math

from agent.errors import EnvProtocolError
from benchmarks.envs.base import Env, Observation, StepInfo, StepResult

MEMBERS = ("env_id", "seed", "reset", "step", "close")


def missing_members(obj: object) -> list[str]:
    """What ``obj`` lacks of the ``Env`` protocol."""
    return [m for m in MEMBERS if not hasattr(obj, m)]


class CheckedEnv:
    """``env`` with its answers checked; the same protocol."""

    def __init__(self, env: Env) -> None:
        self.inner = env
        self._name = type(env).__name__
        env_id, seed = env.env_id, env.seed
        if not isinstance(env_id, str) or not env_id.strip():
            raise EnvProtocolError(f"{self._name}.env_id must be a non-blank str, not {env_id!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise EnvProtocolError(f"{self._name}.seed must be an int, not {seed!r}")
        self._env_id, self._seed = env_id, seed

    @property
    def env_id(self) -> str:
        return self._env_id

    @property
    def seed(self) -> int:
        return self._seed

    def reset(self) -> Observation:
        obs = self.inner.reset()
        if not isinstance(obs, Observation):
            raise EnvProtocolError(
                f"{self._name}.reset() returned {type(obs).__name__}, not an Observation "
                "(benchmarks.envs.base)"
            )
        self._finite("reset()", obs.info)
        return obs

    def step(self, action: str) -> StepResult:
        result = self.inner.step(action)
        if not isinstance(result, StepResult):
            raise EnvProtocolError(
                f"{self._name}.step({action!r}) returned {type(result).__name__}, not a "
                "StepResult (benchmarks.envs.base)"
            )
        if not math.isfinite(result.reward):
            raise EnvProtocolError(
                f"{self._name}.step({action!r}) returned a reward of {result.reward}; rewards "
                "must be finite numbers"
            )
        self._finite(f"step({action!r})", result.info)
        return result

    def close(self) -> None:
        self.inner.close()

    def _finite(self, call: str, info: StepInfo) -> None:
        for name in ("score", "max_score"):
            value = getattr(info, name)
            if not math.isfinite(value):
                raise EnvProtocolError(
                    f"{self._name}.{call} returned info.{name} = {value}; it must be finite"
                )
