"""ScriptedLLM: the test fake, speaking the same interface as the real client.

Answers come from a queue, then from a function of the call; nothing touches the network.
Invalid answers are handled like the real client does (retry, then ``InvalidLLMOutput``),
so tests can exercise junk handling without a server.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from agent.errors import InvalidLLMOutput
from agent.llm.base import Choice, Completion, Usage, UsageMeter

T = TypeVar("T", bound=BaseModel)

CallKind = Literal["complete", "choose", "structured"]
Answer = str | BaseModel | Mapping[str, Any]
"""A scripted answer: text; for ``structured`` also a model instance or a dict."""
Responder = Callable[[CallKind, str, Sequence[str] | type[BaseModel] | None], Answer]
"""``(kind, prompt, options or schema or None) -> answer``, asked when the queue is empty."""


class ScriptExhausted(AssertionError):
    """The test asked for more answers than it scripted."""


@dataclass
class ScriptedCall:
    """One call as the fake received it, for assertions."""

    kind: CallKind
    prompt: str
    options: list[str] | None = None
    schema: type[BaseModel] | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    answers: list[str] = field(default_factory=list)
    """Raw answers consumed, one per attempt (several when some were invalid)."""


class ScriptedLLM:
    """An ``LLMClient`` that answers from a script; tokens are counted as words."""

    def __init__(
        self,
        answers: Iterable[Answer] = (),
        *,
        responder: Responder | None = None,
        max_retries: int = 3,
    ) -> None:
        self.meter = UsageMeter()
        self.calls: list[ScriptedCall] = []
        self.closed = False
        self.max_retries = max_retries
        self._queue: deque[Answer] = deque(answers)
        self._responder = responder

    @property
    def remaining(self) -> int:
        """Scripted answers not consumed yet."""
        return len(self._queue)

    @property
    def prompts(self) -> list[str]:
        return [c.prompt for c in self.calls]

    def add(self, *answers: Answer) -> None:
        self._queue.extend(answers)

    def complete(
        self, prompt: str, *, max_tokens: int, stop: Sequence[str] | None = None
    ) -> Completion:
        call = self._record(
            ScriptedCall("complete", prompt, max_tokens=max_tokens, stop=list(stop or []))
        )
        text = self._next_text(call, None)
        for s in stop or ():
            # Like a server: the stop sequence ends the answer and is not part of it.
            if s and s in text:
                text = text[: text.index(s)]
        usage = self._usage(call)
        self.meter.add(usage)
        return Completion(text=text, usage=usage)

    def choose(self, prompt: str, options: Sequence[str]) -> Choice:
        options = list(options)
        if not options:
            raise ValueError("choose() needs at least one option")
        call = self._record(ScriptedCall("choose", prompt, options=options))
        wanted = [o.strip() for o in options]
        try:
            for _ in range(self.max_retries + 1):
                answer = self._next_text(call, options)
                if answer.strip() in wanted:
                    index = wanted.index(answer.strip())
                    return Choice(text=options[index], index=index, usage=self._usage(call))
            raise InvalidLLMOutput(
                f"the LLM answered {call.answers[-1]!r} (not one of the options), "
                f"still invalid after {self.max_retries + 1} attempts"
            )
        finally:
            self.meter.add(self._usage(call))

    def structured(self, prompt: str, schema: type[T], *, max_tokens: int = 256) -> T:
        call = self._record(
            ScriptedCall("structured", prompt, schema=schema, max_tokens=max_tokens)
        )
        problem = ""
        try:
            for _ in range(self.max_retries + 1):
                answer = self._next(call, schema)
                if isinstance(answer, schema):
                    call.answers.append(answer.model_dump_json())
                    return answer
                text = _as_text(answer)
                call.answers.append(text)
                try:
                    return schema.model_validate_json(text)
                except ValidationError as e:
                    problem = f"{e.error_count()} validation error(s)"
            raise InvalidLLMOutput(
                f"the LLM answered {call.answers[-1]!r} ({problem}), "
                f"still invalid after {self.max_retries + 1} attempts"
            )
        finally:
            self.meter.add(self._usage(call))

    def close(self) -> None:
        self.closed = True

    # -- internals ---------------------------------------------------------------------

    def _record(self, call: ScriptedCall) -> ScriptedCall:
        self.calls.append(call)
        return call

    def _next(self, call: ScriptedCall, about: Sequence[str] | type[BaseModel] | None) -> Answer:
        if self._queue:
            return self._queue.popleft()
        if self._responder is not None:
            return self._responder(call.kind, call.prompt, about)
        raise ScriptExhausted(
            f"ScriptedLLM has no answer left for {call.kind}() (call #{len(self.calls)}): "
            f"prompt ends {call.prompt[-80:]!r}"
        )

    def _next_text(self, call: ScriptedCall, about: Sequence[str] | None) -> str:
        text = _as_text(self._next(call, about))
        call.answers.append(text)
        return text

    def _usage(self, call: ScriptedCall) -> Usage:
        """Every attempt pays for its prompt and answer, as with a real endpoint."""
        words = len(call.prompt.split())
        return Usage(
            prompt_tokens=words * len(call.answers),
            completion_tokens=sum(max(1, len(a.split())) for a in call.answers),
            calls=1,
        )


def _as_text(answer: Answer) -> str:
    if isinstance(answer, str):
        return answer
    if isinstance(answer, BaseModel):
        return answer.model_dump_json()
    return json.dumps(dict(answer))
