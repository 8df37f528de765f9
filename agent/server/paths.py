"""Which documented path template a request path falls under (the API's own OpenAPI)."""

from __future__ import annotations

from typing import Any

from starlette.routing import compile_path


def documented_path(app: Any, path: str) -> tuple[str, dict[str, Any]] | None:
    """The first path template of ``app``'s OpenAPI document that ``path`` matches (the
    router tries them in the same order: ``/v1/memories/export`` before
    ``/v1/memories/{memory_id}``) with its operations by method; None if none does."""
    openapi = getattr(app, "openapi", None)
    if openapi is None:
        return None
    for template, operations in openapi().get("paths", {}).items():
        if compile_path(template)[0].match(path):
            return template, operations
    return None
