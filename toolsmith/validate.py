"""Validation before registration: a verdict with a reason for every candidate tool.

Code tools: static checks (``toolsmith.static``), then their tests in the sandbox. Macros:
replay on an episode they came from, with the macro run as the executor would run it; the
episode must reach at least its original score.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from sandbox.base import Sandbox
from toolsmith.models import Tool, Trajectory
from toolsmith.params import instantiate, match, matches, slots_in
from toolsmith.replay import EnvFactory, replay_macro, replay_score
from toolsmith.sandboxed import run_tests
from toolsmith.static import tool_problems


class Verdict(BaseModel):
    """Accept or reject, and why."""

    ok: bool
    note: str
    """How it was validated (accepted) or why not (rejected): stored on the tool."""


def validate_code_tool(tool: Tool, sandbox: Sandbox | None, timeout: float = 10.0) -> Verdict:
    """Static checks of code and tests, then the tests in the sandbox (all must pass)."""
    problems = tool_problems(tool.code, tool.tests)
    if problems:
        return Verdict(ok=False, note="static check: " + "; ".join(problems[:4]))
    if sandbox is None:
        return Verdict(ok=False, note="no sandbox to run the tests in")
    report = run_tests(sandbox, tool.code or "", tool.tests or "", timeout)
    if report.error is not None:
        return Verdict(ok=False, note=f"tests did not run: {report.error}")
    if report.failed:
        name, err = next(iter(report.failed.items()))
        n = len(report.failed)
        return Verdict(ok=False, note=f"{n} test(s) failed in the sandbox, e.g. {name}: {err}")
    if not report.passed:
        return Verdict(ok=False, note="no test ran")
    return Verdict(
        ok=True, note=f"static checks passed; {len(report.passed)} test(s) passed in {sandbox.name}"
    )


def occurrence(tool: Tool, actions: Sequence[str]) -> tuple[int, dict[str, str]] | None:
    """Where the macro (an instantiation of it) occurs in ``actions``: (start, slot values)."""
    n = len(tool.steps)
    for i in range(len(actions) - n + 1):
        window = actions[i : i + n]
        if not tool.slots:
            if list(window) == tool.steps:
                return i, {}
        elif matches(tool.steps, tool.slots, window):
            return i, match(tool.steps, tool.slots, window)
    return None


def validate_macro(
    tool: Tool, trajectories: Sequence[Trajectory], env_factory: EnvFactory | None
) -> Verdict:
    """Replay the first replayable episode that contains the macro; the macro's first-step
    slots are bound as an offer would bind them, later ones resolve while it runs."""
    if env_factory is None:
        return Verdict(ok=True, note="not replayed: no environment factory")
    for traj in trajectories:
        if traj.seed is None:
            continue
        found = occurrence(tool, traj.actions)
        if found is None:
            continue
        start, values = found
        first = {k: v for k, v in values.items() if k in slots_in(tool.steps[0], tool.slots)}
        steps = instantiate(tool.steps, first)
        where = f"{traj.episode_id} (seed {traj.seed})"
        try:
            original = replay_score(env_factory, traj.env_id, traj.seed, traj.actions)
            result = replay_macro(
                env_factory,
                traj.env_id,
                traj.seed,
                traj.actions,
                start,
                len(tool.steps),
                steps,
                tool.slots,
            )
        except Exception as e:  # the environment failed: cannot vouch for the macro
            return Verdict(ok=False, note=f"replay on {where} failed: {type(e).__name__}: {e}")
        if result.stopped is not None:
            return Verdict(ok=False, note=f"replay on {where}: {result.stopped}")
        if result.score < original:
            return Verdict(
                ok=False,
                note=f"replay on {where}: score {result.score:g} < original {original:g}",
            )
        return Verdict(
            ok=True, note=f"replayed on {where}: score {result.score:g} >= original {original:g}"
        )
    return Verdict(ok=True, note="not replayed: no replayable episode contains it")
