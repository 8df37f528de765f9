"""Convergence metric (after Yunjue): tools synthesized / tool invocations, per batch of
episodes. It falls toward 0 as the toolset stabilizes (few new tools, many uses)."""

from __future__ import annotations

import threading
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr


class ConvergenceBatch(NamedTuple):
    episodes: int
    """Episodes observed so far when the batch closed (cumulative)."""
    synthesized: int
    """Tools registered as active during the batch."""
    invocations: int
    """Tool calls during the batch."""
    ratio: float | None
    """synthesized / invocations (None without invocations)."""


class ConvergenceCounter(BaseModel):
    """Running totals and one row per closed batch of ``batch_size`` episodes."""

    model_config = ConfigDict(validate_assignment=False)

    batch_size: int = Field(default=10, ge=1)
    synthesized: int = 0
    invocations: int = 0
    rejected: int = 0
    offers: int = 0
    """Executor steps at which at least one tool was offered."""
    episodes: int = 0
    batches: list[ConvergenceBatch] = Field(default_factory=list)
    batch_synthesized: int = 0
    batch_invocations: int = 0
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def ratio(self) -> float | None:
        return self.synthesized / self.invocations if self.invocations else None

    def add_synthesized(self, n: int = 1) -> None:
        with self._lock:
            self.synthesized += n
            self.batch_synthesized += n

    def add_rejected(self, n: int = 1) -> None:
        with self._lock:
            self.rejected += n

    def add_offer(self) -> None:
        with self._lock:
            self.offers += 1

    def add_invocation(self) -> None:
        with self._lock:
            self.invocations += 1
            self.batch_invocations += 1

    def end_episode(self) -> ConvergenceBatch | None:
        """Count an episode; returns the batch it closed, if any."""
        with self._lock:
            self.episodes += 1
            if self.episodes % self.batch_size:
                return None
            return self._close()

    def flush(self) -> ConvergenceBatch | None:
        """Close a partial last batch (for a report at the end of a run)."""
        with self._lock:
            if self.episodes % self.batch_size == 0:
                return None
            return self._close()

    def _close(self) -> ConvergenceBatch:
        s, i = self.batch_synthesized, self.batch_invocations
        batch = ConvergenceBatch(self.episodes, s, i, s / i if i else None)
        self.batches.append(batch)
        self.batch_synthesized = self.batch_invocations = 0
        return batch

    def table(self) -> list[str]:
        """One line per batch, for reports."""
        rows = ["episodes  synthesized  invocations  ratio"]
        for b in self.batches:
            ratio = f"{b.ratio:.3f}" if b.ratio is not None else "-"
            rows.append(f"{b.episodes:8d}  {b.synthesized:11d}  {b.invocations:11d}  {ratio}")
        return rows
