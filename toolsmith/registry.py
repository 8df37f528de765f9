"""The tool registry interface and an in-process implementation.

A backend implements a few primitives (store, fetch, list, retrieve by similarity of the doc
to the task, archive a version, keep trajectories) and one transaction context; version
history, rollback, usage statistics and status changes are written once here on top.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from memory.embeddings import Embedder
from toolsmith.models import Tool, ToolFeedback, ToolStatus, ToolUse, Trajectory, check_status

FEEDBACK_KEEP = 20
"""Uses kept per tool for doc refinement; older ones are dropped."""


class ToolRegistry(ABC):
    """Primitives a registry backend implements; ``register``, ``revise``, ``rollback``,
    ``record_use`` and ``set_status`` are written once on top of them."""

    def __init__(self, namespace: str = "default") -> None:
        self.namespace = namespace
        self._lock = threading.RLock()

    # -- primitives -------------------------------------------------------------------

    @abstractmethod
    def put(self, tool: Tool) -> None:
        """Insert or replace the current version of a tool, by name."""

    @abstractmethod
    def get(self, name: str) -> Tool | None: ...

    @abstractmethod
    def list_tools(self, status: ToolStatus | None = None) -> list[Tool]: ...

    @abstractmethod
    def retrieve(self, query: str, k: int = 5) -> list[Tool]:
        """Active tools whose doc is most similar to ``query``, most similar first."""

    @abstractmethod
    def _archive(self, tool: Tool) -> None:
        """Keep ``tool`` (a version about to be replaced) in the version history."""

    @abstractmethod
    def _archived(self, name: str) -> list[Tool]:
        """Replaced versions of ``name``, oldest first."""

    @abstractmethod
    def _remove(self, name: str) -> None:
        """Drop ``name``'s current version and its version history."""

    @abstractmethod
    def _clear(self) -> int:
        """Drop every tool, version and trajectory of the namespace; the trajectories
        dropped."""

    @abstractmethod
    def add_trajectory(self, trajectory: Trajectory, keep: int = 200) -> None:
        """Store a successful episode (replacing one with the same episode id); only the
        newest ``keep`` of its environment are kept."""

    @abstractmethod
    def trajectories(self, env_id: str | None = None) -> list[Trajectory]:
        """Stored episodes of ``env_id`` (of every environment when None), oldest first."""

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A read-modify-write that no other writer interleaves with (re-entrant)."""
        with self._lock:
            yield

    # -- written once -----------------------------------------------------------------

    def versions(self, name: str) -> list[Tool]:
        """Every version of ``name``, oldest first; the last one is the current one."""
        with self.atomic():
            current = self.get(name)
            return [*self._archived(name), current] if current is not None else []

    def register(self, tool: Tool) -> Tool:
        """Add a tool, or a new version of an existing one (the old one goes to history)."""
        with self.atomic():
            old = self.get(tool.name)
            if old is not None:
                self._archive(old)
                tool = tool.model_copy(update={"version": old.version + 1})
            self.put(tool)
            return tool

    def revise(self, name: str, change: str, **fields: Any) -> Tool:
        """A new version of ``name`` with ``fields`` replaced; usage statistics carry over."""
        with self.atomic():
            old = self.get(name)
            if old is None:
                raise KeyError(name)
            self._archive(old)
            new = old.model_copy(
                deep=True, update={**fields, "version": old.version + 1, "change": change}
            )
            new.provenance.updated_at = time.time()
            self.put(new)
            return new

    def rollback(self, name: str, version: int) -> Tool:
        """Make version ``version``'s body and doc current again, as a new version (the
        history stays append-only). Raises KeyError for an unknown name or version."""
        if not isinstance(version, int):
            raise TypeError(f"version must be an int, not {type(version).__name__}")
        with self.atomic():
            history = self.versions(name)
            if not history:
                raise KeyError(name)
            target = next((t for t in history if t.version == version), None)
            if target is None:
                raise KeyError(f"{name} has no version {version}")
            if version == history[-1].version:
                return history[-1]
            body = {f: getattr(target, f) for f in ("doc", "steps", "slots", "code", "tests")}
            return self.revise(name, f"rolled back to v{version}", feedback=[], **body)

    def record_use(self, use: ToolUse, feedback: ToolFeedback | None = None) -> Tool | None:
        """Count one use; ``feedback`` is kept for doc refinement. Returns the tool."""
        with self.atomic():
            tool = self.get(use.name)
            if tool is None:
                return None
            tool.uses += 1
            tool.successes += int(use.succeeded)
            tool.failures += int(not use.succeeded)
            tool.reward += use.reward
            if feedback is not None:
                tool.feedback = [*tool.feedback, feedback][-FEEDBACK_KEEP:]
            tool.provenance.updated_at = time.time()
            self.put(tool)
            return tool

    def set_status(self, name: str, status: ToolStatus, reason: str | None = None) -> Tool:
        """Set ``name``'s status (``ValueError`` for an unknown one, ``KeyError`` for an
        unknown tool)."""
        check_status(status)
        with self.atomic():
            tool = self.get(name)
            if tool is None:
                raise KeyError(name)
            tool.status = status
            tool.reason = reason
            self.put(tool)
            return tool

    def mined_from(self, episode_id: str, status: ToolStatus | None = None) -> list[Tool]:
        """The tools (of ``status``, when given) whose provenance names episode
        ``episode_id``: what that episode's trajectory gave."""
        return [t for t in self.list_tools(status) if episode_id in t.provenance.episode_ids]

    def import_tool(self, tool: Tool, history: Sequence[Tool] = ()) -> None:
        """Add ``tool`` and its earlier versions as they were exported (versions, status,
        usage and provenance kept). Raises KeyError when the name is taken."""
        with self.atomic():
            if self.get(tool.name) is not None:
                raise KeyError(tool.name)
            for old in sorted(history, key=lambda t: t.version):
                self._archive(old)
            self.put(tool)

    def delete(self, name: str) -> int:
        """Forget ``name`` and its whole version history; the number of versions it had (0:
        no such tool). The stored episodes it was mined from stay, so later successes can
        mine the same macro again (``set_status(name, "disabled")`` keeps it from being
        offered instead)."""
        with self.atomic():
            n = len(self.versions(name))
            if n:
                self._remove(name)
            return n

    def reset(self) -> tuple[int, int]:
        """Forget every tool of the namespace, their histories and the stored episodes that
        macros are mined from; returns (tools, episodes) forgotten."""
        with self.atomic():
            tools = len(self.list_tools())
            return tools, self._clear()

    def close(self) -> None:
        """Release connections; the in-process registry has none."""
        return None


def rank(query_vec: npt.NDArray[np.float32], vecs: npt.NDArray[np.float32], k: int) -> list[int]:
    """Row indices of the ``k`` rows most similar to the query (unit vectors: dot product)."""
    if k <= 0 or len(vecs) == 0:
        return []
    sims = vecs @ query_vec
    # Stable order for ties, so retrieval is deterministic.
    return sorted(range(len(sims)), key=lambda i: -float(sims[i]))[:k]


class InProcessToolRegistry(ToolRegistry):
    """Tools in a dict: for tests and throwaway agents; gone with the process."""

    def __init__(self, embedder: Embedder, namespace: str = "default") -> None:
        super().__init__(namespace)
        self.embedder = embedder
        self._tools: dict[str, Tool] = {}
        self._history: dict[str, list[Tool]] = {}
        self._vecs: dict[str, npt.NDArray[np.float32]] = {}
        self._trajs: dict[str, dict[str, Trajectory]] = {}

    def put(self, tool: Tool) -> None:
        with self.atomic():
            old = self._tools.get(tool.name)
            if old is None or old.doc != tool.doc:
                self._vecs[tool.name] = self.embedder.embed([tool.doc])[0]
            self._tools[tool.name] = tool.model_copy(deep=True)

    def get(self, name: str) -> Tool | None:
        with self.atomic():
            t = self._tools.get(name)
            return t.model_copy(deep=True) if t else None

    def list_tools(self, status: ToolStatus | None = None) -> list[Tool]:
        if status is not None:
            check_status(status)
        with self.atomic():
            return [
                t.model_copy(deep=True)
                for t in self._tools.values()
                if status is None or t.status == status
            ]

    def retrieve(self, query: str, k: int = 5) -> list[Tool]:
        with self.atomic():
            active = [t for t in self._tools.values() if t.status == "active"]
            if not active or k <= 0:
                return []
            q = self.embedder.embed([query])[0]
            vecs = np.stack([self._vecs[t.name] for t in active])
            return [active[i].model_copy(deep=True) for i in rank(q, vecs, k)]

    def _archive(self, tool: Tool) -> None:
        self._history.setdefault(tool.name, []).append(tool.model_copy(deep=True))

    def _archived(self, name: str) -> list[Tool]:
        return [t.model_copy(deep=True) for t in self._history.get(name, [])]

    def _remove(self, name: str) -> None:
        self._tools.pop(name, None)
        self._history.pop(name, None)
        self._vecs.pop(name, None)

    def _clear(self) -> int:
        episodes = sum(len(by_id) for by_id in self._trajs.values())
        self._tools.clear()
        self._history.clear()
        self._vecs.clear()
        self._trajs.clear()
        return episodes

    def add_trajectory(self, trajectory: Trajectory, keep: int = 200) -> None:
        with self.atomic():
            by_id = self._trajs.setdefault(trajectory.env_id, {})
            by_id.pop(trajectory.episode_id, None)
            by_id[trajectory.episode_id] = trajectory.model_copy(deep=True)
            for old in list(by_id)[: max(0, len(by_id) - keep)]:
                del by_id[old]

    def trajectories(self, env_id: str | None = None) -> list[Trajectory]:
        with self.atomic():
            if env_id is not None:
                return [t.model_copy(deep=True) for t in self._trajs.get(env_id, {}).values()]
            every = [t for by_id in self._trajs.values() for t in by_id.values()]
            return [t.model_copy(deep=True) for t in sorted(every, key=lambda t: t.created_at)]
