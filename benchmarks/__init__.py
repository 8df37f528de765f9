"""Benchmarks: environments the agent is evaluated on, and the harness around them."""

from benchmarks.envs import (
    ENV_IDS,
    Env,
    Observation,
    StepInfo,
    StepResult,
    TextWorldEnv,
    ToyEnv,
    make_env,
    pregenerate,
)

__all__ = [
    "ENV_IDS",
    "Env",
    "Observation",
    "StepInfo",
    "StepResult",
    "TextWorldEnv",
    "ToyEnv",
    "make_env",
    "pregenerate",
]
