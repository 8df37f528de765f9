"""Tools as JSON lines: the rows `evolvent tools export` and ``GET /v1/tools/export`` write,
and the checks `evolvent tools import` and ``POST /v1/tools/import`` make before they write.

A row is the tool (``Tool``'s fields, plus its signature, success rate and utility for
readers) with ``versions``: its earlier versions, oldest first. An import writes every row
or none.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from agent.errors import EvolventError
from agent.jsonl import parse_row
from toolsmith.models import Tool
from toolsmith.registry import ToolRegistry
from toolsmith.static import tool_problems


class ToolImportError(EvolventError):
    """A row that cannot be imported (nothing was)."""


class ToolNamesTaken(ToolImportError):
    """The namespace already has tools of these names (nothing was imported)."""

    def __init__(self, namespace: str, names: Sequence[str]) -> None:
        self.names = list(names)
        super().__init__(
            f"namespace {namespace!r} already has {', '.join(names)}; nothing imported "
            "(delete them first, or import into another namespace)"
        )


def tool_row(tool: Tool) -> dict[str, Any]:
    """The tool as JSON-able data, with its signature, success rate and utility."""
    data = tool.model_dump(mode="json")
    data.update(signature=tool.signature, success_rate=tool.success_rate, utility=tool.utility)
    return data


def export_rows(registry: ToolRegistry) -> Iterator[dict[str, Any]]:
    """Every tool of the registry's namespace, each with its earlier versions."""
    for tool in registry.list_tools():
        row = tool_row(tool)
        row["versions"] = [v.model_dump(mode="json") for v in registry.versions(tool.name)[:-1]]
        yield row


def imported(row: Any, where: str) -> tuple[Tool, list[Tool]]:
    """An exported row as the tool and its earlier versions, checked as the synthesizer
    would check a new tool: a code tool that could run must pass the static check.
    ``where`` (file:line, or line N) names the row in a ``ToolImportError``."""
    try:
        tool = parse_row(Tool, row, where, "a tool")
        raw = row.get("versions", []) if isinstance(row, dict) else []
        if not isinstance(raw, list):
            raise ToolImportError(f"{where}: versions must be a list; nothing imported")
        history = [parse_row(Tool, v, f"{where} (versions)", "a tool version") for v in raw]
    except ToolImportError:
        raise
    except EvolventError as e:
        raise ToolImportError(str(e)) from None
    numbers = [v.version for v in history]
    if len(set(numbers)) != len(numbers) or any(
        v.name != tool.name or v.version >= tool.version for v in history
    ):
        raise ToolImportError(
            f"{where}: the versions of {tool.name!r} must be its own, each once and older "
            f"than v{tool.version}; nothing imported"
        )
    if tool.args:
        raise ToolImportError(f"{where}: {tool.name!r} is an offer (args set), not a tool")
    if tool.kind == "code" and tool.status != "rejected":
        problems = tool_problems(tool.code, tool.tests, tests_required=False)
        if problems:
            raise ToolImportError(
                f"{where}: code tool {tool.name!r} fails the static check ({problems[0]}); "
                "nothing imported"
            )
    return tool, history


def check_unique(rows: Sequence[tuple[Tool, list[Tool]]], where: str = "the rows") -> None:
    """Each name once among the rows (``where``: the file they came from)."""
    names = [tool.name for tool, _ in rows]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ToolImportError(f"{where}: {', '.join(twice)} more than once; nothing imported")


def import_rows(registry: ToolRegistry, rows: Sequence[tuple[Tool, list[Tool]]]) -> int:
    """Write checked rows (``imported``) into the registry, all or none; how many."""
    check_unique(rows)
    names = [tool.name for tool, _ in rows]
    with registry.atomic():
        taken = [n for n in names if registry.get(n) is not None]
        if taken:
            raise ToolNamesTaken(registry.namespace, taken)
        for tool, history in rows:
            registry.import_tool(tool, history)
    return len(rows)
