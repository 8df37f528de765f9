"""One plain line per finished episode where no live progress bar can be drawn.

Rich draws its bars only on a terminal. With stderr sent to a log file or a pipe (a
benchmark under ``nohup``, a CI job, ``| tee``) it draws nothing, and a run of hours would
say nothing until its end. There, each finished episode is told in one line instead, with
how many are done and, once one has been played, an estimate of the time left.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rich.console import Console

from agent.result import EpisodeResult


def outcome(result: EpisodeResult) -> str:
    """``won, score 1/1 in 9 steps, 12.3 s``."""
    mark = "won" if result.success else "not won"
    return (
        f"{mark}, score {result.score:g}/{result.max_score:g} in {counted(result.steps, 'step')}, "
        f"{result.wall_s:.1f} s"
    )


def counted(n: int, noun: str) -> str:
    """``1 step``, ``9 steps``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def duration(seconds: float) -> str:
    """``45s``, ``4m 05s``, ``2h 03m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


class EpisodeLines:
    """Counts finished episodes and, when ``console`` is not a terminal, prints a line each.

    ``done`` is how many of ``total`` were finished before (a resumed run); the estimate of
    the time left uses only the episodes finished since this object was made, and leaves out
    the start-up before the first of them (starting the LLM, opening the stores: paid once,
    not per episode). Safe to call from several threads (episodes played concurrently)."""

    def __init__(
        self,
        console: Console,
        total: int,
        done: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.enabled = not console.is_terminal
        self.total = total
        self.done = done
        self._here = 0
        self._clock = clock
        self._start = clock()
        self._startup: float | None = None
        self._lock = threading.Lock()

    def counted(self) -> None:
        """An episode finished before this run (a resume): counted, not told again."""
        with self._lock:
            self.done += 1

    def finished(self, what: str, result: EpisodeResult) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += 1
            self._here += 1
            left = self.total - self.done
            line = f"[{self.done}/{self.total}] {what}: {outcome(result)}"
            now = self._clock()
            if self._startup is None:  # what came before the first episode began
                self._startup = max(0.0, now - self._start - result.wall_s)
            if left > 0:
                per_episode = (now - self._start - self._startup) / self._here
                line += f"; about {duration(per_episode * left)} left"
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)
