"""LLM-written Python tools for a missing capability (after Alita / Yunjue).

The LLM fills a small JSON form (name, doc, code, tests) through ``structured()``. The code
must define ``run(observation, admissible) -> list[str]`` returning actions to take. Nothing
here trusts the answer: ``toolsmith.validate`` checks and tests it before registration, and a
junk answer is registered as rejected with the reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, Field

from agent.errors import InvalidLLMOutput
from agent.llm.base import LLMClient
from toolsmith.models import CODE_SIGNATURE, Tool, ToolProvenance
from toolsmith.static import ALLOWED_IMPORTS


class CodeToolDraft(BaseModel):
    """The form the LLM fills. No ``maxLength`` in the schema: llama.cpp expands it into
    one nested grammar rule per character, and a few hundred levels crash its server; the
    answer's length is bounded by ``max_tokens`` and checked by validation instead."""

    name: str = Field(description="snake_case name of the tool")
    doc: str = Field(description="when to use it and what it returns")
    code: str = Field(description="Python source defining run()")
    tests: str = Field(description="test_ functions with asserts")


_EXAMPLE = CodeToolDraft(
    name="take_everything",
    doc="Takes every object that can be taken here; use when items lie around.",
    code=(
        "def run(observation, admissible):\n"
        "    return [a for a in admissible if a.startswith('take ')]\n"
    ),
    tests=(
        "def test_takes_only_takeable():\n"
        "    assert run('', ['take key', 'look']) == ['take key']\n"
        "\n"
        "def test_nothing_to_take():\n"
        "    assert run('', ['look']) == []\n"
    ),
)


def code_tool_prompt(task: str, trajectory_summary: str) -> str:
    return (
        "You write small Python tools for a text-game agent.\n"
        f"A tool defines `def {CODE_SIGNATURE}`: given the observation and the admissible "
        "actions, it returns the actions to take now, in order, chosen from `admissible`.\n"
        f"Allowed imports: {', '.join(sorted(ALLOWED_IMPORTS))}. No files, no network, "
        "no eval/exec, no dunder names.\n"
        "Tests are `def test_...():` functions with `assert`s that call `run`.\n\n"
        f"Example tool:\n{_EXAMPLE.model_dump_json()}\n\n"
        f"Task: {task.strip()}\n"
        f"What happened:\n{trajectory_summary.strip()}\n\n"
        "A new tool that would have helped (JSON):\n"
    )


_SLUG = re.compile(r"[^a-z0-9]+")


def tool_name(raw: str) -> str:
    name = _SLUG.sub("_", raw.lower()).strip("_")[:40]
    return name if name and not name[0].isdigit() else f"code_{name}".rstrip("_")


def propose_code_tool(
    llm: LLMClient, task: str, trajectory_summary: str, *, max_tokens: int = 500
) -> Tool | None:
    """Ask the LLM for a code tool; None when its answer does not even fill the form."""
    try:
        draft = llm.structured(
            code_tool_prompt(task, trajectory_summary), CodeToolDraft, max_tokens=max_tokens
        )
    except InvalidLLMOutput:
        return None
    return Tool(
        name=tool_name(draft.name),
        kind="code",
        doc=" ".join(draft.doc.split())[:400] or "(no description)",
        code=draft.code,
        tests=draft.tests,
        provenance=ToolProvenance(source="llm"),
    )


def trajectory_summary(
    steps: Sequence[tuple[str, str]], *, keep: int = 8, clip: int = 100, outcome: str = ""
) -> str:
    """The last ``keep`` (action, observation) pairs as short lines, for the prompt."""
    lines = []
    for action, obs in list(steps)[-keep:]:
        text = " ".join(obs.split())
        lines.append(f"> {action}\n  {text[:clip]}{'…' if len(text) > clip else ''}")
    if outcome:
        lines.append(f"Outcome: {outcome}")
    return "\n".join(lines) or "(no actions)"
