"""Benchmark harness: arms × (held-out frozen, training stream, held-out frozen), JSONL out.

Names load lazily: ``evolvent --help`` imports ``benchmarks.harness.cli``, and the runner
pulls in the whole agent (~1 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from benchmarks.harness.arms import ARM_NAMES, ARMS, arm_settings, frozen, with_overrides
    from benchmarks.harness.backends import ArmState, Backends, default_backends
    from benchmarks.harness.records import EPISODES_FILE, EpisodeLog
    from benchmarks.harness.runner import BenchRunner, run_bench
    from benchmarks.harness.spec import PHASES, BenchSpec, BenchSpecError, parse_seeds

_WHERE = {
    **dict.fromkeys(("ARM_NAMES", "ARMS", "arm_settings", "frozen", "with_overrides"), "arms"),
    **dict.fromkeys(("ArmState", "Backends", "default_backends"), "backends"),
    **dict.fromkeys(("EPISODES_FILE", "EpisodeLog"), "records"),
    **dict.fromkeys(("BenchRunner", "run_bench"), "runner"),
    **dict.fromkeys(("PHASES", "BenchSpec", "BenchSpecError", "parse_seeds"), "spec"),
}

__all__ = [
    "ARMS",
    "ARM_NAMES",
    "EPISODES_FILE",
    "PHASES",
    "ArmState",
    "Backends",
    "BenchRunner",
    "BenchSpec",
    "BenchSpecError",
    "EpisodeLog",
    "arm_settings",
    "default_backends",
    "frozen",
    "parse_seeds",
    "run_bench",
    "with_overrides",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'benchmarks.harness' has no attribute {name!r}")
    return getattr(importlib.import_module(f"benchmarks.harness.{_WHERE[name]}"), name)
