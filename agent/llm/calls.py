"""What to send for each call, per endpoint kind: pure functions, no I/O.

Each server family asks for structured output differently, and the wrong form is an HTTP
error rather than a no-op (llama.cpp answers 500 to OpenAI's ``json_schema``; vLLM >= 0.12
dropped ``guided_choice`` for ``structured_outputs``), so the form is chosen per kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.llm.grammar import (
    CHOICE_FIELD,
    choice_grammar,
    choice_schema,
    json_schema_grammar,
    strict_schema,
)

Kind = Literal["llamacpp", "vllm", "openai"]
PromptStyle = Literal["completion", "chat"]
Endpoint = Literal["completion", "chat"]

# Room for JSON punctuation and the whitespace a schema grammar allows around the value.
_JSON_WRAP_TOKENS = 24


@dataclass(frozen=True)
class CallSpec:
    """One request, independent of the transport."""

    endpoint: Endpoint
    prompt: str
    max_tokens: int
    stop: tuple[str, ...] = ()
    response_format: dict[str, Any] | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)
    json_field: str | None = None
    """When set, the answer is a JSON object and the value lives in this field."""


def completion_call(
    style: PromptStyle, prompt: str, max_tokens: int, stop: Sequence[str] | None
) -> CallSpec:
    return CallSpec(endpoint=style, prompt=prompt, max_tokens=max_tokens, stop=tuple(stop or ()))


def choice_call(kind: Kind, style: PromptStyle, prompt: str, options: Sequence[str]) -> CallSpec:
    if not options:
        raise ValueError("choose() needs at least one option")
    # A token covers at least one byte (byte fallback), so this bounds the longest option.
    budget = max(len(o.encode()) for o in options) + 1
    if kind == "llamacpp" and style == "completion":
        grammar = {"grammar": choice_grammar(options)}
        return CallSpec("completion", prompt, budget, extra_body=grammar)
    if kind == "vllm":
        choice = {"structured_outputs": {"choice": list(dict.fromkeys(options))}}
        return CallSpec(style, prompt, budget, extra_body=choice)
    schema = choice_schema(options)
    # JSON escapes can make an option longer than its bytes ("é" -> "\u00e9").
    json_budget = max(len(json.dumps(o)) for o in options) + _JSON_WRAP_TOKENS
    return CallSpec(
        "chat",
        prompt,
        json_budget,
        response_format=_json_format(kind, schema, "choice"),
        json_field=CHOICE_FIELD,
    )


def structured_call(
    kind: Kind,
    style: PromptStyle,
    prompt: str,
    schema: dict[str, Any],
    name: str,
    max_tokens: int,
    *,
    grammar_for: Callable[[dict[str, Any]], str | None] = json_schema_grammar,
) -> CallSpec:
    if kind == "vllm":
        return CallSpec(
            style, prompt, max_tokens, extra_body={"structured_outputs": {"json": schema}}
        )
    if kind == "llamacpp" and style == "completion":
        # llama-cpp-python's /v1/completions takes a grammar but no response_format.
        grammar = grammar_for(schema)
        if grammar is not None:
            return CallSpec("completion", prompt, max_tokens, extra_body={"grammar": grammar})
    return CallSpec("chat", prompt, max_tokens, response_format=_json_format(kind, schema, name))


def _json_format(kind: Kind, schema: dict[str, Any], name: str) -> dict[str, Any]:
    if kind == "llamacpp":
        # llama.cpp rejects type=json_schema but turns json_object+schema into a grammar.
        return {"type": "json_object", "schema": schema}
    closed, strict = strict_schema(schema)
    safe_name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"
    return {
        "type": "json_schema",
        "json_schema": {"name": safe_name, "schema": closed, "strict": strict},
    }


def parse_choice(text: str, spec: CallSpec, options: Sequence[str]) -> int:
    """Index of the option ``text`` names; ValueError when it names none."""
    answer = text
    if spec.json_field is not None:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get(spec.json_field), str):
            raise ValueError(f'expected {{"{spec.json_field}": "..."}}')
        answer = data[spec.json_field]
    wanted = answer.strip()
    for i, option in enumerate(options):
        if option.strip() == wanted:
            return i
    raise ValueError("not one of the options")
