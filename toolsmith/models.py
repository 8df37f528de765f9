"""Tool data models: what a tool is, where it came from, how it has fared."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, Field

ToolKind = Literal["macro", "code"]
ToolStatus = Literal["active", "disabled", "rejected"]


class ToolProvenance(BaseModel):
    """Where a tool came from."""

    source: Literal["mined", "llm", "user"] = "mined"
    episode_ids: list[str] = Field(default_factory=list)
    """Episodes whose trajectories contained it."""
    env_id: str | None = None
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


class Tool(BaseModel):
    """A reusable procedure: a macro of environment actions or Python code."""

    name: str
    kind: ToolKind
    doc: str
    steps: list[str] = Field(default_factory=list)
    """Macro body: environment actions run in order."""
    code: str | None = None
    """Python body of a code tool."""
    version: int = 1
    status: ToolStatus = "active"
    reason: str | None = None
    """Why it was rejected or disabled."""
    provenance: ToolProvenance = Field(default_factory=ToolProvenance)
    uses: int = 0
    successes: int = 0
    failures: int = 0

    @property
    def success_rate(self) -> float:
        return self.successes / self.uses if self.uses else 0.0

    @property
    def utility(self) -> float:
        """Laplace-smoothed success rate: an unused tool starts at 0.5."""
        return (self.successes + 1) / (self.uses + 2)


class ToolUse(BaseModel):
    """The outcome of running a tool once."""

    name: str
    actions_run: list[str]
    completed: bool
    """All steps ran (a macro stops early when a step is not admissible)."""
    reward: float = 0.0
