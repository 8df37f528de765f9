"""A free-text task as an environment: one answer, optionally checked by a verifier."""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.envs.base import Observation, StepInfo, StepResult

TEXT_ENV_ID = "text"


class TextTask:
    """``Agent.run("question")`` plays this: the agent answers once and the episode ends.

    Without a ``check`` there is nothing to verify against, so the episode is not a success
    and its memories are recorded with outcome ``failure``-by-default; give ``check`` to
    score answers.
    """

    def __init__(self, task: str, check: Callable[[str], bool] | None = None) -> None:
        self.task = task
        self.check = check
        self.answer: str | None = None

    @property
    def env_id(self) -> str:
        return TEXT_ENV_ID

    @property
    def seed(self) -> int:
        return 0

    def reset(self) -> Observation:
        self.answer = None
        return Observation(task=self.task, text=self.task, admissible=[], info=self._info(False))

    def step(self, action: str) -> StepResult:
        self.answer = action
        ok = bool(self.check and self.check(action))
        return StepResult(
            text=f"Answer: {action}",
            admissible=[],
            reward=float(ok),
            done=True,
            info=self._info(ok),
        )

    def _info(self, ok: bool) -> StepInfo:
        return StepInfo(score=float(ok), max_score=1.0 if self.check else 0.0, won=ok)

    def close(self) -> None:
        pass
