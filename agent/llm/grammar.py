"""GBNF grammars and JSON schemas for constrained decoding.

llama.cpp constrains ``/v1/completions`` with a GBNF grammar; chat endpoints and hosted APIs
take a JSON schema instead. Both forms of "one of these options" are built here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

CHOICE_FIELD = "choice"

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "\\": "\\\\"}
_ESCAPES = {
    # Control characters as \xNN, except those with a name; non-ASCII stays literal: the
    # GBNF parser reads a UTF-8 sequence as one char.
    **{chr(i): f"\\x{i:02x}" for i in (*range(0x20), 0x7F)},
    **_NAMED_ESCAPES,
}
_ESCAPE_TABLE = str.maketrans(_ESCAPES)
_NEEDS_ESCAPE = re.compile("[" + "".join(map(re.escape, _ESCAPES)) + "]")


def gbnf_literal(text: str) -> str:
    """``text`` as a quoted GBNF string literal that matches exactly ``text``."""
    if _NEEDS_ESCAPE.search(text) is not None:  # seldom: most options need no escape
        text = text.translate(_ESCAPE_TABLE)
    return '"' + text + '"'


def choice_grammar(options: Sequence[str]) -> str:
    """A grammar whose only sentences are the ``options``."""
    if not options:
        raise ValueError("choice_grammar needs at least one option")
    unique = list(dict.fromkeys(options))
    return "root ::= " + " | ".join(gbnf_literal(o) for o in unique)


def choice_schema(options: Sequence[str]) -> dict[str, Any]:
    """JSON schema of ``{"choice": <one of options>}``."""
    return {
        "type": "object",
        "properties": {CHOICE_FIELD: {"type": "string", "enum": list(dict.fromkeys(options))}},
        "required": [CHOICE_FIELD],
        "additionalProperties": False,
    }


def json_schema_grammar(schema: dict[str, Any]) -> str | None:
    """GBNF for ``schema`` via llama-cpp-python's converter; None when it is not installed.

    Only used on llama.cpp's ``/v1/completions``, which takes a grammar but no schema.
    """
    return _json_schema_grammar(json.dumps(schema, sort_keys=True))


@lru_cache(maxsize=64)
def _json_schema_grammar(schema_json: str) -> str | None:
    try:
        from llama_cpp.llama_grammar import json_schema_to_gbnf
    except ImportError:
        return None
    grammar: str = json_schema_to_gbnf(schema_json)
    return grammar


def strict_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Copy of ``schema`` closed for OpenAI's ``json_schema``, and whether strict mode fits.

    Strict mode requires every property of every object to be required; pydantic models with
    defaults are not, so those are sent non-strict rather than rejected.
    """
    closed = json.loads(json.dumps(schema))
    strict = True

    def visit(node: Any) -> None:
        nonlocal strict
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node.setdefault("additionalProperties", False)
                if set(node.get("required", [])) != set(node["properties"]):
                    strict = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(closed)
    return closed, strict
