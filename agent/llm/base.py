"""The LLM client interface, shared by the real client and the scripted fake.

All calls are prompt-based (a base model continues text); clients configured for chat
endpoints wrap the prompt into a user message. Every call returns its token usage, and the
client keeps a running ``UsageMeter`` that the agent reads per episode.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T", bound=BaseModel)


class Usage(BaseModel):
    """Token counts and time of one or more calls (immutable: sums make new ones)."""

    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    seconds: float = 0.0
    """Wall time spent inside LLM calls (including retries and backoff)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        # Sums of valid usages are valid: built without validation (a few per step).
        return Usage.model_construct(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            calls=self.calls + other.calls,
            seconds=self.seconds + other.seconds,
        )

    def __sub__(self, other: Usage) -> Usage:
        return Usage.model_construct(
            prompt_tokens=self.prompt_tokens - other.prompt_tokens,
            completion_tokens=self.completion_tokens - other.completion_tokens,
            calls=self.calls - other.calls,
            seconds=self.seconds - other.seconds,
        )


class Completion(BaseModel):
    """A free-text answer."""

    text: str
    usage: Usage = Field(default_factory=Usage)


class Choice(BaseModel):
    """One of the offered options, chosen by constrained decoding."""

    text: str
    index: int
    usage: Usage = Field(default_factory=Usage)


class UsageMeter:
    """Thread-safe running total of usage; snapshot before/after an episode to meter it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = Usage()

    def add(self, usage: Usage) -> None:
        with self._lock:
            self._total = self._total + usage

    def snapshot(self) -> Usage:
        # ``add`` replaces the total, never changes it, and a Usage is immutable: the total
        # as it stands is the snapshot (taken several times a step; a copy cost more).
        with self._lock:
            return self._total


@runtime_checkable
class LLMClient(Protocol):
    """What the agent needs from a backbone."""

    meter: UsageMeter

    def complete(
        self, prompt: str, *, max_tokens: int, stop: Sequence[str] | None = None
    ) -> Completion:
        """Continue ``prompt`` with at most ``max_tokens`` tokens."""
        ...

    def choose(self, prompt: str, options: Sequence[str]) -> Choice:
        """Return exactly one of ``options`` (constrained decoding where the endpoint can).

        Raises ``InvalidLLMOutput`` when, after retries, the answer is not an option.
        """
        ...

    def structured(self, prompt: str, schema: type[T], *, max_tokens: int = 256) -> T:
        """Return an instance of ``schema`` parsed from a JSON-schema-constrained answer.

        Raises ``InvalidLLMOutput`` when, after retries, the answer does not validate.
        """
        ...

    def close(self) -> None: ...
