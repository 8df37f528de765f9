"""Benchmark environments: one protocol (``base``), its families and a registry."""

from benchmarks.envs.base import Env, Observation, StepInfo, StepResult
from benchmarks.envs.registry import ENV_IDS, make_env, pregenerate
from benchmarks.envs.textworld_env import TextWorldEnv
from benchmarks.envs.toy import ToyEnv

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
