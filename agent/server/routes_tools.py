"""``/v1/tools``: the tools the agent built; switching them off and on, deleting them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Response

from agent.server.auth import CurrentPrincipal, get_deps
from agent.server.deps import ServerDeps
from agent.server.models import error_responses, optional_schema
from toolsmith.models import Tool, ToolStatus
from toolsmith.registry import ToolRegistry

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
    tools: Tools, status: Annotated[ToolStatus | None, optional_schema(ToolStatus)] = None
) -> list[Tool]:
    return sorted(tools.list_tools(status), key=lambda t: t.name)


@router.get("/{name}", response_model=Tool, summary="One tool", responses=error_responses(404))
def get_tool(name: ToolName, tools: Tools) -> Tool:
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
    if tools.get(name) is None:
        raise HTTPException(404, f"no tool {name!r}")
    return tools.set_status(name, "disabled", "disabled through the API")


@router.post(
    "/{name}/enable",
    response_model=Tool,
    summary="Offer a disabled tool again",
    responses=error_responses(404, 409),
)
def enable_tool(name: ToolName, tools: Tools) -> Tool:
    tool = tools.get(name)
    if tool is None:
        raise HTTPException(404, f"no tool {name!r}")
    if tool.status == "rejected":
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
