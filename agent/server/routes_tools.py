"""``/v1/tools``: the tools the agent built: list, inspect with their versions, switch off and on,
roll back, delete, export and import."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from agent.server.auth import CurrentPrincipal, get_deps
from agent.server.deps import ServerDeps
from agent.server.models import ImportResult, ToolRollback, error_responses, optional_schema
from agent.server.ndjson import NDJSON_BODY, NDJSON_RESPONSE, body_lines, read_body, stream
from toolsmith.models import Tool, ToolStatus
from toolsmith.registry import ToolRegistry
from toolsmith.transfer import (
    ToolImportError,
    ToolNamesTaken,
    check_unique,
    export_rows,
    import_rows,
    imported,
)

router = APIRouter(prefix="/v1/tools", tags=["tools"], responses=error_responses(401, 422))


def get_tools(
    who: CurrentPrincipal, deps: Annotated[ServerDeps, Depends(get_deps)]
) -> ToolRegistry:
    """The caller's namespace's tool registry."""
    return deps.toolsmith(who.namespace).registry


Tools = Annotated[ToolRegistry, Depends(get_tools)]
ToolName = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("", response_model=list[Tool], summary="List tools")
def list_tools(
    tools: Tools,
    status: Annotated[ToolStatus | None, optional_schema(ToolStatus)] = None,
    episode: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Only tools mined from this episode"),
        optional_schema(str, minLength=1, maxLength=200),
    ] = None,
) -> list[Tool]:
    """By name; with ``episode``, only the tools whose provenance names that episode."""
    found = tools.list_tools(status) if episode is None else tools.mined_from(episode, status)
    return sorted(found, key=lambda t: t.name)


@router.get(
    "/export",
    summary="Every tool of the namespace, with its earlier versions, as JSON lines",
    response_class=StreamingResponse,
    responses=NDJSON_RESPONSE,
)
def export_tools(tools: Tools) -> StreamingResponse:
    return stream(export_rows(tools))


@router.post(
    "/import",
    response_model=ImportResult,
    summary="Import tools from JSON lines (as written by export)",
    responses=error_responses(409, 413),
    openapi_extra=NDJSON_BODY,
)
async def import_tools(request: Request, tools: Tools) -> ImportResult:
    """Versions, usage, status and provenance are kept. Every line is checked first (a
    code tool that could run must pass the static check); nothing is imported when one is
    invalid (422 names the line) or a name is taken (409)."""
    body = await read_body(request)
    try:
        rows = await run_in_threadpool(_parse_tools, body)
        n = await run_in_threadpool(import_rows, tools, rows)
    except ToolNamesTaken as e:
        raise HTTPException(409, str(e)) from None
    except ToolImportError as e:
        raise HTTPException(422, str(e)) from None
    return ImportResult(imported=n)


def _parse_tools(body: bytes) -> list[tuple[Tool, list[Tool]]]:
    rows = []
    for lineno, line in body_lines(body):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ToolImportError(f"line {lineno}: not JSON ({e.msg}); nothing imported") from None
        rows.append(imported(row, f"line {lineno}"))
    check_unique(rows, "the body")
    return rows


@router.get("/{name}", response_model=Tool, summary="One tool", responses=error_responses(404))
def get_tool(name: ToolName, tools: Tools) -> Tool:
    return _tool(tools, name)


def _tool(tools: ToolRegistry, name: str) -> Tool:
    """The current version of ``name``; 404 for an unknown tool."""
    tool = tools.get(name)
    if tool is None:
        raise HTTPException(404, f"no tool {name!r}")
    return tool


@router.post(
    "/{name}/disable",
    response_model=Tool,
    summary="Stop offering a tool to the agent",
    responses=error_responses(404),
)
def disable_tool(name: ToolName, tools: Tools) -> Tool:
    _tool(tools, name)
    return tools.set_status(name, "disabled", "disabled through the API")


@router.post(
    "/{name}/enable",
    response_model=Tool,
    summary="Offer a disabled tool again",
    responses=error_responses(404, 409),
)
def enable_tool(name: ToolName, tools: Tools) -> Tool:
    if _tool(tools, name).status == "rejected":
        raise HTTPException(409, f"tool {name!r} failed validation and cannot be enabled")
    return tools.set_status(name, "active", None)


@router.delete(
    "/{name}",
    status_code=204,
    response_class=Response,
    summary="Delete a tool with its version history",
    responses=error_responses(404),
)
def delete_tool(name: ToolName, tools: Tools) -> Response:
    if not tools.delete(name):
        raise HTTPException(404, f"no tool {name!r}")
    return Response(status_code=204)


@router.get(
    "/{name}/versions",
    response_model=list[Tool],
    summary="Every version of a tool, oldest first (the last is the current one)",
    responses=error_responses(404),
)
def tool_versions(name: ToolName, tools: Tools) -> list[Tool]:
    return _history(tools, name)


def _history(tools: ToolRegistry, name: str) -> list[Tool]:
    """Every version of ``name``, oldest first; 404 for an unknown tool."""
    history = tools.versions(name)
    if not history:
        raise HTTPException(404, f"no tool {name!r}")
    return history


@router.post(
    "/{name}/rollback",
    response_model=Tool,
    summary="Make an earlier version current again (as a new version)",
    responses=error_responses(404),
)
def rollback_tool(name: ToolName, body: ToolRollback, tools: Tools) -> Tool:
    with tools.atomic():
        history = _history(tools, name)
        if body.version not in {t.version for t in history}:
            known = ", ".join(f"v{t.version}" for t in history)
            raise HTTPException(404, f"tool {name!r} has no version {body.version}; it has {known}")
        return tools.rollback(name, body.version)
