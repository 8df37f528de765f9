"""Data models of learned state. Every record says where it came from."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, Field

MemoryKind = Literal["episode", "note", "experience", "action", "value"]
Outcome = Literal["success", "failure", "unknown"]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Provenance(BaseModel):
    """Where a piece of learned state came from and how it was checked."""

    episode_id: str | None = None
    """Thread id of the episode that produced it."""
    env_id: str | None = None
    seed: int | None = None
    outcome: Outcome = "unknown"
    verifier: str = "env-reward"
    """What judged the outcome: ``env-reward`` (the environment's win/score), ``llm``,
    ``user`` (imported or written by hand)."""
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


class MemoryRecord(BaseModel):
    """One memory. ``key`` is what retrieval matches against; ``text`` is what prompts show."""

    id: str = Field(min_length=1)
    kind: MemoryKind
    key: str
    """Intent (episodes), subject (notes) or topic (experiences)."""
    text: str
    """Experience, note or insight injected into prompts."""
    q: float = 0.0
    """Learned utility (episodes: Q-value; experiences: net votes)."""
    uses: int = 0
    """How many prompts included it."""
    successes: int = 0
    failures: int = 0
    provenance: Provenance = Field(default_factory=Provenance)
    meta: dict[str, Any] = Field(default_factory=dict)


class MemoryHit(BaseModel):
    """A retrieved memory with its scores."""

    id: str
    kind: MemoryKind
    key: str
    text: str
    similarity: float
    q: float
    score: float
    """Final ranking score (episodes: the z-mix of similarity and Q)."""
    record: MemoryRecord
