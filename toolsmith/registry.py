"""The tool registry interface and an in-process implementation.

Tools are retrieved by similarity of their doc to the task. The registry also keeps the
successful trajectories the miner learns from and the per-batch convergence counters.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod

import numpy as np

from memory.embeddings import Embedder
from toolsmith.models import Tool, ToolStatus, ToolUse


class ToolRegistry(ABC):
    """Primitives a registry backend implements; ``record_use`` etc. are written once."""

    @abstractmethod
    def put(self, tool: Tool) -> None:
        """Insert or replace a tool by name."""

    @abstractmethod
    def get(self, name: str) -> Tool | None: ...

    @abstractmethod
    def list_tools(self, status: ToolStatus | None = None) -> list[Tool]: ...

    @abstractmethod
    def retrieve(self, query: str, k: int = 5) -> list[Tool]:
        """Active tools most similar to ``query``."""

    def register(self, tool: Tool) -> Tool:
        """Add a tool, or a new version of an existing one."""
        old = self.get(tool.name)
        if old is not None:
            tool = tool.model_copy(update={"version": old.version + 1})
        self.put(tool)
        return tool

    def record_use(self, use: ToolUse) -> None:
        tool = self.get(use.name)
        if tool is None:
            return
        tool.uses += 1
        tool.successes += int(use.completed)
        tool.failures += int(not use.completed)
        tool.provenance.updated_at = time.time()
        self.put(tool)

    def set_status(self, name: str, status: ToolStatus, reason: str | None = None) -> Tool:
        tool = self.get(name)
        if tool is None:
            raise KeyError(name)
        tool.status = status
        tool.reason = reason
        self.put(tool)
        return tool


class InProcessToolRegistry(ToolRegistry):
    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._tools: dict[str, Tool] = {}
        self._vecs: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()

    def put(self, tool: Tool) -> None:
        with self._lock:
            old = self._tools.get(tool.name)
            if old is None or old.doc != tool.doc:
                self._vecs[tool.name] = self.embedder.embed([tool.doc])[0]
            self._tools[tool.name] = tool.model_copy(deep=True)

    def get(self, name: str) -> Tool | None:
        with self._lock:
            t = self._tools.get(name)
            return t.model_copy(deep=True) if t else None

    def list_tools(self, status: ToolStatus | None = None) -> list[Tool]:
        with self._lock:
            return [
                t.model_copy(deep=True)
                for t in self._tools.values()
                if status is None or t.status == status
            ]

    def retrieve(self, query: str, k: int = 5) -> list[Tool]:
        with self._lock:
            active = [t for t in self._tools.values() if t.status == "active"]
            if not active or k <= 0:
                return []
            q = self.embedder.embed([query])[0]
            sims = [float(self._vecs[t.name] @ q) for t in active]
            order = sorted(range(len(active)), key=lambda i: -sims[i])[:k]
            return [active[i].model_copy(deep=True) for i in order]
