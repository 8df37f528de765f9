"""Replay an episode's actions on a fresh environment (deterministic for an env id and seed).

Macro validation replays the episode a macro was mined from with the macro's occurrence run
the way the executor runs a tool: step by step, each step resolved against the admissible
actions of the moment, stopping at the first one that cannot run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel

from benchmarks.envs.base import Env
from toolsmith.params import resolve_step

EnvFactory = Callable[[str, int], Env]
"""``(env_id, seed) -> Env``, e.g. ``lambda e, s: make_env(e, s, games_dir)``."""


class MacroReplay(BaseModel):
    """What replaying an episode with a macro in it gave."""

    score: float
    """Final score with the macro's steps in place of its occurrence."""
    ran: list[str]
    """The macro's steps as they ran (slots resolved)."""
    stopped: str | None = None
    """Why the macro stopped before its last step, or None when it ran completely."""


def replay_score(env_factory: EnvFactory, env_id: str, seed: int, actions: Sequence[str]) -> float:
    """Reset a fresh environment, play ``actions`` (until done), return the final score."""
    env = env_factory(env_id, seed)
    try:
        score = env.reset().info.score
        for action in actions:
            result = env.step(action)
            score = result.info.score
            if result.done:
                break
        return score
    finally:
        env.close()


def replay_macro(
    env_factory: EnvFactory,
    env_id: str,
    seed: int,
    actions: Sequence[str],
    start: int,
    length: int,
    steps: Sequence[str],
    slots: Sequence[str] = (),
) -> MacroReplay:
    """Play ``actions`` with ``actions[start:start + length]`` replaced by the macro ``steps``
    (slots not bound yet are resolved from the admissible actions as the executor does)."""
    env = env_factory(env_id, seed)
    ran: list[str] = []
    stopped: str | None = None
    try:
        obs = env.reset()
        score, admissible, done = obs.info.score, list(obs.admissible), False
        plan: list[tuple[str, bool]] = [(a, False) for a in actions[:start]]
        plan += [(s, True) for s in steps]
        plan += [(a, False) for a in actions[start + length :]]
        skipping = False
        for action, in_macro in plan:
            if done:
                break
            if in_macro:
                if skipping:
                    continue
                resolved = resolve_step(action, admissible, slots)
                if resolved is None:
                    stopped = f"step {len(ran) + 1} {action!r} could not run (not admissible)"
                    skipping = True  # the executor hands control back to the LLM here
                    continue
                ran.append(resolved)
                action = resolved
            result = env.step(action)
            score, admissible, done = result.info.score, list(result.admissible), result.done
        return MacroReplay(score=score, ran=ran, stopped=stopped)
    finally:
        env.close()
