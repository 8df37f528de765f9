"""Turns successful trajectories into registered macro tools and tracks convergence.

Convergence metric (after Yunjue): tools synthesized / tool invocations, per batch of
episodes; it falls toward 0 as the toolset stabilizes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from pydantic import BaseModel

from toolsmith.mining import macro_name, mine_macros
from toolsmith.models import Tool, ToolProvenance, ToolUse
from toolsmith.registry import ToolRegistry


class ConvergenceCounter(BaseModel):
    synthesized: int = 0
    invocations: int = 0

    @property
    def ratio(self) -> float | None:
        return self.synthesized / self.invocations if self.invocations else None


class Toolsmith:
    def __init__(
        self,
        registry: ToolRegistry,
        min_support: int = 2,
        max_len: int = 4,
        keep_trajectories: int = 200,
    ) -> None:
        self.registry = registry
        self.min_support = min_support
        self.max_len = max_len
        self.keep = keep_trajectories
        self._successes: dict[str, list[tuple[str, list[str]]]] = {}
        self.counter = ConvergenceCounter()
        self._lock = threading.Lock()

    def observe(
        self, episode_id: str, env_id: str, actions: Sequence[str], success: bool
    ) -> list[Tool]:
        """Learn from a finished episode; returns the tools it registered."""
        if not success or len(actions) < 2:
            return []
        with self._lock:
            buf = self._successes.setdefault(env_id, [])
            buf.append((episode_id, list(actions)))
            del buf[: -self.keep]
            mined = mine_macros(buf, self.min_support, 2, self.max_len)
            new: list[Tool] = []
            for m in mined:
                name = macro_name(m.steps)
                if self.registry.get(name) is not None:
                    continue
                tool = Tool(
                    name=name,
                    kind="macro",
                    doc="Runs, in order: " + "; ".join(m.steps),
                    steps=m.steps,
                    provenance=ToolProvenance(source="mined", episode_ids=m.support, env_id=env_id),
                )
                new.append(self.registry.register(tool))
            self.counter.synthesized += len(new)
            return new

    def offer(self, task: str, admissible: Sequence[str], k: int = 3) -> list[Tool]:
        """Active macros relevant to the task whose first step can run now."""
        allowed = set(admissible)
        return [
            t
            for t in self.registry.retrieve(task, k=20)
            if t.kind == "macro" and t.steps and t.steps[0] in allowed
        ][:k]

    def record(self, use: ToolUse) -> None:
        with self._lock:
            self.counter.invocations += 1
        self.registry.record_use(use)
