"""Data models of learned state. Every record says where it came from."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MemoryKind = Literal["episode", "note", "experience", "action", "value"]
Outcome = Literal["success", "failure", "unknown"]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Provenance(BaseModel):
    """Where a piece of learned state came from and how it was checked."""

    model_config = ConfigDict(allow_inf_nan=False)

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
    """One memory. ``key`` is what retrieval matches against; ``text`` is what prompts show.

    Numbers are finite, here and in ``meta`` (an imported NaN or Infinity would reach the
    vector store and the rankings, and JSON could not carry it back out), and counts are
    not negative."""

    model_config = ConfigDict(allow_inf_nan=False)

    id: str = Field(min_length=1, max_length=200)
    kind: MemoryKind
    key: str
    """Intent (episodes), subject (notes) or topic (experiences)."""
    text: str
    """Experience, note or insight injected into prompts."""
    q: float = 0.0
    """Learned utility (episodes: Q-value; experiences: net votes)."""
    uses: int = Field(default=0, ge=0)
    """How many prompts included it."""
    successes: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)
    provenance: Provenance = Field(default_factory=Provenance)
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("meta")
    @classmethod
    def _finite_meta(cls, meta: dict[str, Any]) -> dict[str, Any]:
        if not _finite(meta):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        return meta


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in a JSON-like value."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


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
