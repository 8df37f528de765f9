"""Arms of a benchmark: one base ``Settings``, each arm a set of dotted overrides.

An arm switches memory kinds on or off at *retrieval/use* time; every arm plays with its own
store directory and namespace, so no arm ever sees what another one learned. The knobs:

* ``memory.top_k`` — episodic memories shown to the planner (0: none);
* ``memory.action_hints`` — step-level action proposals (0: none);
* ``memory.notebook_batch`` — mistake notebook updates (0: no notes are ever written);
* ``memory.distill_every`` — experience distillation (0: no experiences are ever written);
* ``agent.use_tools`` — offering and mining macro tools;
* ``agent.learn`` — writing anything at all (off in ``frozen`` and in every held-out phase).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from agent.config import Settings
from agent.errors import ConfigError

_ALL_OFF: Final[dict[str, Any]] = {
    "memory.top_k": 0,
    "memory.action_hints": 0,
    "memory.notebook_batch": 0,
    "memory.distill_every": 0,
    "agent.use_tools": False,
}

ARMS: Final[dict[str, dict[str, Any]]] = {
    "frozen": {**_ALL_OFF, "agent.learn": False},
    "episodic": {**_ALL_OFF, "memory.top_k": 3, "memory.action_hints": 3, "agent.learn": True},
    "notes": {**_ALL_OFF, "memory.notebook_batch": 4, "agent.learn": True},
    "experiences": {**_ALL_OFF, "memory.distill_every": 5, "agent.learn": True},
    "tools": {**_ALL_OFF, "agent.use_tools": True, "agent.learn": True},
    # Everything on, at the base settings' values where the base enables a knob.
    "full": {"agent.learn": True, "agent.use_tools": True},
}
"""Arm name → dotted settings overrides applied on top of the base settings."""

ARM_NAMES: Final[tuple[str, ...]] = tuple(ARMS)


def check_arm(name: str) -> str:
    if name not in ARMS:
        raise ConfigError(f"unknown arm {name!r}; valid arms: {', '.join(ARM_NAMES)}")
    return name


def with_overrides(base: Settings, overrides: dict[str, Any]) -> Settings:
    """``base`` with dotted keys (``{"memory.top_k": 0}``) replaced, validated again."""
    data = base.model_dump()
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        cur = data
        for p in parents:
            cur = cur[p]
        if leaf not in cur:
            raise ConfigError(f"no setting {key!r}")
        cur[leaf] = value
    return Settings.model_validate(data)


def full_overrides(base: Settings) -> dict[str, Any]:
    """``full`` keeps the base's positive knobs, and turns on any the base has at 0."""
    m = base.memory
    return {
        **ARMS["full"],
        "memory.top_k": m.top_k or 3,
        "memory.action_hints": m.action_hints or 3,
        "memory.notebook_batch": m.notebook_batch or 4,
        "memory.distill_every": m.distill_every or 5,
    }


def arm_settings(
    base: Settings, arm: str, state_dir: Path, repeat: int = 0, tag: str = ""
) -> Settings:
    """Settings of ``arm`` whose learned state (memory, tools, checkpoints) lives in
    ``state_dir`` under its own namespace (``tag`` appended: one run's namespaces on a
    Chroma server shared by several runs)."""
    overrides = full_overrides(base) if check_arm(arm) == "full" else dict(ARMS[arm])
    overrides.update(
        {
            "memory.path": state_dir / "memory",
            "memory.namespace": f"bench-{arm}-r{repeat}" + (f"-{tag}" if tag else ""),
            "checkpoint_db": state_dir / "checkpoints.sqlite",
            # Games are shared: they are a pure function of the seed.
            "games_dir": base.games_path,
        }
    )
    return with_overrides(base, overrides)


def frozen(settings: Settings) -> Settings:
    """The same arm, evaluated without learning (held-out phases)."""
    return with_overrides(settings, {"agent.learn": False})
