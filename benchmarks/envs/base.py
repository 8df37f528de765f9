"""The environment protocol every benchmark family implements.

``reset()`` returns the task, the first observation and the admissible actions;
``step(action)`` returns the next observation, reward, done flag and info (score, won).
Environments are deterministic for a given (env id, seed), which is what lets a killed
episode resume: the runner resets a fresh env and replays the recorded actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, Field


class StepInfo(BaseModel):
    """What an environment reports besides the observation."""

    score: float = 0.0
    """Points collected so far in the episode."""
    max_score: float = 1.0
    """Points available in the episode (normalized score = score / max_score)."""
    won: bool = False
    lost: bool = False
    extra: dict[str, object] = Field(default_factory=dict)
    """Family-specific details (e.g. the walkthrough for TextWorld games)."""


class Observation(BaseModel):
    """What the agent sees after ``reset()``."""

    task: str
    """The goal in words (for TextWorld: the game's objective)."""
    text: str
    """The first observation."""
    admissible: list[str]
    """Valid actions now; empty means free-text answers."""
    info: StepInfo = Field(default_factory=StepInfo)


class StepResult(BaseModel):
    """What the agent sees after ``step(action)``."""

    text: str
    admissible: list[str]
    reward: float
    """Score gained by this step."""
    done: bool
    info: StepInfo = Field(default_factory=StepInfo)


@runtime_checkable
class Env(Protocol):
    """A task environment. Implementations hold one game at a time."""

    @property
    def env_id(self) -> str:
        """Registry id, e.g. ``textworld:cooking``."""
        ...

    @property
    def seed(self) -> int:
        """Seed of the current game."""
        ...

    def reset(self) -> Observation: ...

    def step(self, action: str) -> StepResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Family:
    """A family of environments beyond TextWorld: ids ``prefix:name`` for each of ``names``.

    ``make(name, seed, games_dir)`` builds one environment; it must import the family's
    third-party package only then, so that listing ids stays cheap. ``pregenerate(name,
    seeds, games_dir)``, when given, prepares game files ahead of timed episodes.
    """

    prefix: str
    names: tuple[str, ...]
    make: Callable[[str, int, Path], Env]
    name_label: str = "name"
    """What a name is, for help texts (``task``, ``task_type``)."""
    summary: str = ""
    """One line for ``evolvent envs``: what the family is and what it needs."""
    pregenerate: Callable[[str, list[int], Path], list[Path]] | None = None
