"""TextWorld games (cooking, treasure hunter, coin collector) behind the ``Env`` protocol.

``textworld`` is imported lazily: importing it costs over a second, and unit tests that
only use ``ToyEnv`` import this package too.
"""

from __future__ import annotations

import re
import threading
import warnings
from pathlib import Path
from typing import Any

from benchmarks.envs.base import Observation, StepInfo, StepResult
from benchmarks.envs.tw_games import KINDS, check_kind, ensure_game

# Interpreter meta-commands. "quit"/"restart" open a yes/no prompt and then restart the
# story while TextWorld's own state tracking carries on, "save"/"restore"/"script" touch
# files: any of them breaks the determinism replays rely on, so they never reach the game.
_META_WORDS = frozenset(
    {"quit", "q", "restart", "save", "restore", "script", "unscript", "transcript", "noscript"}
)
_META_REPLY = "That command is not available in this game."
_ENDED_REPLY = "The game has ended."
_RESET_LOCK = threading.Lock()
_END_QUESTION = "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?"
_INFOS = (
    "feedback",
    "admissible_commands",
    "policy_commands",
    "score",
    "max_score",
    "won",
    "lost",
    "objective",
)


def clean_feedback(raw: str) -> str:
    """Game text without the ASCII-art banner, the ``>`` prompt and the status line."""
    lines = [line.strip() for line in raw.splitlines()]
    # The prompt line also carries the status bar ("-= Kitchen =-0/3") that frotz appends.
    lines = [line for line in lines if not line.startswith(">") and line != _END_QUESTION]
    # The banner opening a game is drawn with symbols only: no letters or digits.
    while lines and not any(char.isalnum() for char in lines[0]):
        lines.pop(0)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def sanitize_command(action: str) -> str:
    """One line of printable text: a newline sends two commands to the interpreter and
    desynchronizes every later observation; a NUL byte hangs it."""
    printable = "".join(char if char.isprintable() else " " for char in action)
    return " ".join(printable.split())


class TextWorldEnv:
    """One generated TextWorld game; reward is the score gained by each step.

    The game is generated (or found in ``games_dir``) at construction; the interpreter
    starts on the first ``reset()``. After the game is won or lost, further steps are
    answered without reaching the game, with ``done=True`` and no admissible commands.
    """

    def __init__(self, kind: str, seed: int, games_dir: Path, level: int | None = None) -> None:
        self._level = check_kind(kind, level)
        self._kind = kind
        self._seed = seed
        self.game_path = ensure_game(kind, seed, Path(games_dir), self._level)
        """The ``.z8`` file being played."""
        self._env: Any = None
        self._info = StepInfo()
        self._admissible: list[str] = []
        self._done = False

    @property
    def env_id(self) -> str:
        base = f"textworld:{self._kind}"
        if self._level is not None and self._level != KINDS[self._kind].default_level:
            return f"{base}:level={self._level}"
        return base

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def kind(self) -> str:
        return self._kind

    @property
    def level(self) -> int | None:
        return self._level

    def _start(self) -> Any:
        if self._env is None:
            import textworld

            infos = textworld.EnvInfos(**dict.fromkeys(_INFOS, True))
            self._env = textworld.start(str(self.game_path), request_infos=infos)
        return self._env

    def reset(self) -> Observation:
        with warnings.catch_warnings():
            # Jericho warns that it cannot track score in TextWorld stories; TextWorld's own
            # state tracking supplies the score, so the warning is noise on every reset.
            warnings.filterwarnings("ignore", message=".*is not fully supported")
            # Loading a game parses its logic with TextWorld's grammar, whose parser is not
            # thread-safe: games reset at the same time in several threads (the harness's
            # --concurrency) fail with parse errors unless they take turns.
            with _RESET_LOCK:
                state = self._start().reset()
        self._done = False
        self._info = self._step_info(state)
        self._admissible = sorted(state["admissible_commands"] or [])
        walkthrough = list(state["policy_commands"] or [])
        return Observation(
            task=str(state["objective"]),
            text=clean_feedback(state["feedback"]),
            admissible=self._admissible,
            info=self._info.model_copy(update={"extra": {"walkthrough": walkthrough}}),
        )

    def step(self, action: str) -> StepResult:
        if self._env is None:
            raise RuntimeError("TextWorldEnv.step() called before reset()")
        if self._done:
            return self._reply(_ENDED_REPLY)
        command = sanitize_command(action)
        if _META_WORDS.intersection(re.findall(r"[a-z]+", command.lower())):
            return self._reply(_META_REPLY)
        state, _, done = self._env.step(command)
        before = self._info.score
        self._info = self._step_info(state)
        self._done = bool(done)
        self._admissible = [] if self._done else sorted(state["admissible_commands"] or [])
        return StepResult(
            text=clean_feedback(state["feedback"]),
            admissible=self._admissible,
            reward=self._info.score - before,
            done=self._done,
            info=self._info,
        )

    def _reply(self, text: str) -> StepResult:
        """An answer that leaves the game untouched (ended game, refused meta-command)."""
        return StepResult(
            text=text,
            admissible=self._admissible,
            reward=0.0,
            done=self._done,
            info=self._info.model_copy(),
        )

    @staticmethod
    def _step_info(state: Any) -> StepInfo:
        return StepInfo(
            score=float(state["score"] or 0),
            max_score=float(state["max_score"] or 1),
            won=bool(state["won"]),
            lost=bool(state["lost"]),
        )

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
