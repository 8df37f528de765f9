"""ALFWorld's six household task types behind the ``Env`` protocol.

Ids are ``alfworld:<task_type>``. Games are played by ALFWorld's real text engine:
TextWorld's PDDL environment (``PddlEnv``, backed by fast-downward) wrapped in ALFWorld's
``AlfredDemangler`` (readable names such as ``mug 1``) and ``AlfredInfos``.

Which game a seed plays:

* ``ALFWORLD_DATA`` set (the folder ``alfworld-download`` fills): seed N is the N-th game,
  in sorted path order, among the solvable games of that task type under
  ``$ALFWORLD_DATA/json_2.1.1/train/<task_type>-*/<trial>/game.tw-pddl`` (sliced-object
  tasks excluded, as ALFWorld's own loader does). A folder without such games is a
  ``ConfigError``, as is a seed past the last game.
* Otherwise: the project's own game for (task type, seed), written by ``alfworld_games``
  into ``games_dir/alfworld`` on first use.

Reward is 1 on the step that completes the task (``max_score`` 1); ALFWorld has no losing
state, so an episode ends when it is won or when the runner's step limit is reached.
``textworld`` and ``alfworld`` are imported only when a game starts.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, EvolventError
from benchmarks.envs.alfworld_games import GAME_FILE, TRAJ_FILE, ensure_game
from benchmarks.envs.alfworld_scenes import TASK_TYPES, check_task_type
from benchmarks.envs.base import Env, Family, Observation, StepInfo, StepResult
from benchmarks.envs.textworld_env import sanitize_command

DATA_ENV = "ALFWORLD_DATA"
"""Environment variable naming ALFWorld's data folder (the official games)."""
TRAIN_SPLIT = Path("json_2.1.1") / "train"
_BANNER = "-= Welcome to TextWorld, ALFRED! =-"
_TASK_PREFIX = "Your task is to:"
_ENDED_REPLY = "The game has ended."


def data_dir_from_env() -> Path | None:
    """The folder ``ALFWORLD_DATA`` names, or ``None`` when it is unset or empty."""
    value = os.environ.get(DATA_ENV, "").strip()
    return Path(value).expanduser() if value else None


def _solvable(game: Path) -> bool:
    try:
        data = json.loads(game.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("solvable") is True


@functools.lru_cache(maxsize=16)
def official_games(data_dir: Path, task_type: str) -> tuple[Path, ...]:
    """The solvable training games of ``task_type`` in ALFWorld's data, sorted by path.

    Reads every candidate game file once per process (to check ``solvable``, as ALFWorld's
    loader does), which takes about a second for a task type of the full data set.
    """
    check_task_type(task_type)
    train = data_dir / TRAIN_SPLIT
    if not train.is_dir():
        raise ConfigError(
            f"{DATA_ENV}={data_dir} has no {TRAIN_SPLIT} folder: download the data there "
            f"with `alfworld-download`, or unset {DATA_ENV} to play the project's own games"
        )
    games: list[Path] = []
    for task_dir in sorted(train.iterdir()):
        name = task_dir.name
        if name.split("-")[0] != task_type or "movable" in name or "Sliced" in name:
            continue
        if not task_dir.is_dir():
            continue
        for trial in sorted(task_dir.iterdir()):
            game = trial / GAME_FILE
            if game.is_file() and (trial / TRAJ_FILE).is_file() and _solvable(game):
                games.append(game)
    if not games:
        raise ConfigError(
            f"{DATA_ENV}={data_dir} has no solvable {task_type} games under {TRAIN_SPLIT} "
            f"(expected {task_type}-*/trial_*/{GAME_FILE}); unset {DATA_ENV} to play the "
            "project's own games"
        )
    return tuple(games)


def resolve_game(task_type: str, seed: int, games_dir: Path, data_dir: Path | None) -> Path:
    """The game file (task type, seed) plays: official when ``data_dir`` is given, else
    the project's own (written into ``games_dir`` if needed)."""
    check_task_type(task_type)
    if seed < 0:
        raise ConfigError(f"ALFWorld seeds must be >= 0, got {seed}")
    if data_dir is None:
        return ensure_game(task_type, seed, games_dir)
    games = official_games(data_dir.resolve(), task_type)
    if seed >= len(games):
        raise ConfigError(
            f"seed {seed} is out of range: {DATA_ENV}={data_dir} has {len(games)} solvable "
            f"{task_type} games (seeds 0..{len(games) - 1})"
        )
    return games[seed]


@dataclass(frozen=True)
class _Engine:
    """The third-party pieces a game needs, imported once."""

    textworld: Any
    pddl_env: Any
    """``PddlEnv`` taking its fast-downward library copy as an argument."""
    demangler: Any
    infos: Any
    load_lib: Any


@contextmanager
def _argv_kept() -> Iterator[None]:
    """fast-downward's PDDL translator overwrites ``sys.argv``; put it back afterwards."""
    saved = list(sys.argv)
    try:
        yield
    finally:
        sys.argv[:] = saved


@functools.cache
def _engine() -> _Engine:
    # Importing alfworld creates the folder $ALFWORLD_DATA names (or ~/.cache/alfworld)
    # and sets the variable when unset, which would make later games look for official
    # data. Point it at an existing folder during the import and restore it after.
    saved = os.environ.get(DATA_ENV)
    os.environ[DATA_ENV] = tempfile.gettempdir()
    try:
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
        from fast_downward import load_lib
        from textworld.envs import PddlEnv
    except ImportError as exc:
        raise EvolventError(
            f"ALFWorld is not installed ({exc}): pip install alfworld==0.4.2"
        ) from exc
    finally:
        if saved is None:
            os.environ.pop(DATA_ENV, None)
        else:
            os.environ[DATA_ENV] = saved

    class PooledPddlEnv(PddlEnv):  # type: ignore[misc]
        """``PddlEnv`` minus its ``__init__``'s fresh library copy: it gets one from the pool."""

        def __init__(self, infos: Any, downward_lib: Any) -> None:
            textworld.Environment.__init__(self, infos)
            self.downward_lib = downward_lib

    return _Engine(textworld, PooledPddlEnv, AlfredDemangler, AlfredInfos, load_lib)


class _LibraryPool:
    """Copies of fast-downward's shared library, reused from one game to the next.

    fast-downward keeps a game's state in globals of its library, so each live game needs
    its own copy (``load_lib`` copies the 33 MB ``.so`` and loads it). A copy cannot be
    unloaded safely (after a second ``dlclose`` the interpreter crashes at exit), so a
    closed game hands its copy back here instead; copies are only ever as many as the
    games open at once.
    """

    def __init__(self) -> None:
        self._free: list[Any] = []
        self._lock = threading.Lock()
        self.copies = 0
        """How many copies this process has loaded."""

    def take(self) -> Any:
        with self._lock:
            if self._free:
                return self._free.pop()
            self.copies += 1
        return _engine().load_lib()

    def give_back(self, downward_lib: Any) -> None:
        downward_lib.cleanup()  # frees the last game's task and search state
        with self._lock:
            self._free.append(downward_lib)


LIBRARIES = _LibraryPool()


def clean_intro(raw: str) -> str:
    """The first observation without ALFWorld's welcome banner."""
    return raw.replace(_BANNER, "").strip()


def task_of(intro: str) -> str:
    """The goal sentence of the intro ("put a clean mug in cabinet"), without the period."""
    found = re.findall(rf"{re.escape(_TASK_PREFIX)}\s*(.+)", intro)
    return found[-1].strip().rstrip(".") if found else ""


class AlfWorldEnv:
    """One ALFWorld game on the real engine; reward 1 when the task is done.

    The game file is resolved (and, for the project's games, written) at construction;
    the engine starts on the first ``reset()``. ``data_dir`` overrides ``ALFWORLD_DATA``
    (``None`` reads the variable). After the game is won, further steps are answered
    without reaching the engine, with ``done=True`` and no admissible commands.
    """

    def __init__(
        self,
        task_type: str,
        seed: int,
        games_dir: Path,
        data_dir: Path | None = None,
    ) -> None:
        self._task_type = check_task_type(task_type)
        self._seed = seed
        data_dir = data_dir if data_dir is not None else data_dir_from_env()
        self.official = data_dir is not None
        """Whether the game comes from ALFWorld's data rather than the project's own."""
        self.game_path = resolve_game(task_type, seed, Path(games_dir), data_dir)
        """The ``game.tw-pddl`` file being played."""
        self._env: Any = None
        self._pddl: Any = None
        self._info = StepInfo()
        self._admissible: list[str] = []
        self._done = False

    @property
    def env_id(self) -> str:
        return f"alfworld:{self._task_type}"

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def task_type(self) -> str:
        return self._task_type

    def _start(self) -> Any:
        if self._env is None:
            engine = _engine()
            infos = engine.textworld.EnvInfos(
                admissible_commands=True, won=True, extras=["gamefile"]
            )
            pddl = engine.pddl_env(infos, LIBRARIES.take())
            env = engine.infos(engine.demangler(pddl, shuffle=False))
            try:
                with _argv_kept():
                    env.load(str(self.game_path))
            except (Exception, SystemExit) as exc:
                # A broken game file: name it in one line (fast-downward's translator exits
                # on some errors instead of raising).
                LIBRARIES.give_back(pddl.downward_lib)
                detail = " ".join(str(exc).split())[:300]
                raise EvolventError(
                    f"cannot load ALFWorld game {self.game_path}: {type(exc).__name__}: {detail}"
                ) from exc
            self._env, self._pddl = env, pddl
        return self._env

    def _walkthrough(self) -> list[str]:
        walkthrough = self._pddl.walkthrough if self._pddl is not None else None
        return [str(command) for command in walkthrough or []]

    def reset(self) -> Observation:
        env = self._start()
        with _argv_kept():
            state = env.reset()
        intro = str(state["feedback"])
        self._done = False
        self._info = StepInfo(score=0.0, max_score=1.0)
        self._admissible = sorted(state["admissible_commands"] or [])
        extra: dict[str, object] = {
            "walkthrough": self._walkthrough(),
            "task_type": self._task_type,
            "game_file": str(self.game_path),
        }
        return Observation(
            task=task_of(intro),
            text=clean_intro(intro),
            admissible=self._admissible,
            info=self._info.model_copy(update={"extra": extra}),
        )

    def step(self, action: str) -> StepResult:
        if self._env is None:
            raise RuntimeError("AlfWorldEnv.step() called before reset()")
        if self._done:
            return StepResult(
                text=_ENDED_REPLY,
                admissible=self._admissible,
                reward=0.0,
                done=True,
                info=self._info.model_copy(),
            )
        # ALFWorld's commands and names are lower case; "Go to desk 1" means the same.
        state, _, _ = self._env.step(sanitize_command(action).lower())
        won = bool(state["won"])
        reward = 1.0 if won and not self._info.won else 0.0
        self._info = StepInfo(score=1.0 if won else 0.0, max_score=1.0, won=won)
        self._done = won
        self._admissible = [] if won else sorted(state["admissible_commands"] or [])
        return StepResult(
            text=str(state["feedback"]).strip(),
            admissible=self._admissible,
            reward=reward,
            done=won,
            info=self._info,
        )

    def close(self) -> None:
        """Stop the engine and hand its copy of fast-downward's library back to the pool."""
        if self._env is not None:
            env, pddl = self._env, self._pddl
            self._env = self._pddl = None
            env.close()
            LIBRARIES.give_back(pddl.downward_lib)


def make(task_type: str, seed: int, games_dir: Path) -> Env:
    """``Family.make``: the ALFWorld environment of ``task_type`` for ``seed``."""
    return AlfWorldEnv(task_type, seed, games_dir)


def pregenerate(task_type: str, seeds: list[int], games_dir: Path) -> list[Path]:
    """``Family.pregenerate``: the game files of ``seeds`` (written first for the
    project's own games; looked up in ``ALFWORLD_DATA`` when it is set)."""
    data_dir = data_dir_from_env()
    return [resolve_game(task_type, seed, Path(games_dir), data_dir) for seed in seeds]


FAMILY = Family(
    prefix="alfworld",
    names=TASK_TYPES,
    make=make,
    name_label="task_type",
    summary=(
        "ALFWorld household tasks on its TextWorld/PDDL engine (pip alfworld==0.4.2): "
        "official games when ALFWORLD_DATA is set, else small games generated per seed"
    ),
    pregenerate=pregenerate,
)
