"""ScienceWorld's 30 science tasks (pip ``scienceworld==1.2.3``, a Scala simulator driven
through py4j; needs Java) behind the ``Env`` protocol.

Ids are ``scienceworld:<task>``; the seed is the task's variation index, from 0 to
``MAX_VARIATIONS[task] - 1`` (the package splits them into train: the first half, dev: the
next quarter, test: the last quarter). Tasks load with the ``easy`` simplifications
(teleporting, open doors and containers, self-watering flower pots, no electrical actions);
the electrical tasks keep their electrical actions. Reward is the score gained (the
simulator's 0-1 score times 100, ``max_score`` 100). A negative simulator score means the
task failed (e.g. the agent focused on the wrong thing): the episode ends, lost, with
score 0.

Determinism: the simulator draws from one JVM-wide random generator and iterates hash sets
of objects (ordered by identity hash codes), so what follows a load depends on everything
that JVM did before: bees and animals wander differently on a second load. Every
``reset()`` therefore starts a fresh JVM (about 1-3 s) whose identity hash codes do not
depend on machine load (see ``_JVM_OPTIONS`` in ``scienceworld_sim``); an episode is then
a function of (task, variation, actions) alone.

The gold path (``info.extra["gold_path"]``, also ``"walkthrough"``) is computed by
``scienceworld_gold.ensure_gold_path`` and cached under ``games_dir/scienceworld``; see
``normalize_gold`` there. The task table and the JVM wrapper are in ``scienceworld_sim``, the
pruning of the admissible actions in ``scienceworld_actions``.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.envs.base import Env, Family, Observation, StepInfo, StepResult
from benchmarks.envs.scienceworld_actions import Key
from benchmarks.envs.scienceworld_gold import ensure_gold_path, gold_path
from benchmarks.envs.scienceworld_sim import (
    MAX_SCORE,
    TASKS,
    Game,
    check_task,
    simplifications,
)
from benchmarks.envs.textworld_env import sanitize_command

_REFUSED = frozenset({"reset task"})
_REFUSED_REPLY = "That command is not available here."
_ENDED_REPLY = "The task has ended."


class SciWorldEnv:
    """One ScienceWorld task variation. Each ``reset()`` starts a fresh JVM; ``close()``
    stops it. After the task is completed or failed, further steps are answered without
    reaching the simulator, with ``done=True`` and no admissible actions."""

    def __init__(self, task: str, variation: int, games_dir: Path) -> None:
        check_task(task, variation)
        self._task = task
        self._variation = variation
        self._games_dir = Path(games_dir)
        self._game: Game | None = None
        self._admissible: dict[str, Key] = {}
        self._info = StepInfo(max_score=MAX_SCORE)
        self._done = False

    @property
    def env_id(self) -> str:
        return f"scienceworld:{self._task}"

    @property
    def seed(self) -> int:
        return self._variation

    @property
    def task(self) -> str:
        return self._task

    @property
    def java_pid(self) -> int | None:
        """The running JVM's process id (``None`` before ``reset()`` and after ``close()``)."""
        return self._game.pid if self._game is not None else None

    def reset(self) -> Observation:
        gold = gold_path(self._task, self._variation, self._games_dir)
        self.close()
        self._game = game = Game(self._task, self._variation)
        self._done = False
        self._info = game.info()
        self._admissible = game.admissible()
        extra: dict[str, object] = {
            "gold_path": gold,
            "walkthrough": gold,
            "variation": self._variation,
            "simplifications": simplifications(self._task),
        }
        return Observation(
            task=game.task_description,
            text=game.first_look.strip(),
            admissible=list(self._admissible),
            info=self._info.model_copy(update={"extra": extra}),
        )

    def step(self, action: str) -> StepResult:
        if self._game is None:
            raise RuntimeError("SciWorldEnv.step() called before reset()")
        if self._done:
            return self._reply(_ENDED_REPLY)
        command = sanitize_command(action)
        if command.lower() in _REFUSED:
            return self._reply(_REFUSED_REPLY)
        text = self._game.step(command, self._admissible.get(command))
        before = self._info.score
        self._info = self._game.info()
        self._done = self._game.ended(self._info)
        self._admissible = {} if self._done else self._game.admissible()
        return StepResult(
            text=text.strip(),
            admissible=list(self._admissible),
            reward=self._info.score - before,
            done=self._done,
            info=self._info,
        )

    def _reply(self, text: str) -> StepResult:
        """An answer that leaves the simulator untouched (ended task, refused command)."""
        return StepResult(
            text=text,
            admissible=list(self._admissible),
            reward=0.0,
            done=self._done,
            info=self._info.model_copy(),
        )

    def close(self) -> None:
        if self._game is not None:
            game, self._game = self._game, None
            game.close()


def make(name: str, seed: int, games_dir: Path) -> Env:
    return SciWorldEnv(name, seed, games_dir)


def pregenerate(name: str, seeds: list[int], games_dir: Path) -> list[Path]:
    """Compute (or find) the gold paths of ``seeds``, so timed episodes do not pay for it.
    Every seed is checked first: a bad one fails before any simulator starts."""
    for seed in seeds:
        check_task(name, seed)
    return [ensure_gold_path(name, seed, games_dir) for seed in seeds]


FAMILY = Family(
    prefix="scienceworld",
    names=TASKS,
    make=make,
    name_label="task",
    summary=(
        "ScienceWorld science tasks, easy mode, seed = variation index "
        "(pip scienceworld==1.2.3; needs Java: openjdk-17-jre-headless)"
    ),
    pregenerate=pregenerate,
)
