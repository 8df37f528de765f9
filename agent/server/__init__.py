"""The REST service: ``evolvent serve`` / ``python -m agent.server``.

``create_app(deps)`` builds the FastAPI app; ``ServerDeps`` holds what it runs on;
``EvolventClient`` is the typed Python client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.server.app import create_app
    from agent.server.client import ApiError, EvolventClient, ServerUnreachable
    from agent.server.config import ServerConfig, ServeSettings, load_serve_settings
    from agent.server.deps import ServerDeps

__all__ = [
    "ApiError",
    "EvolventClient",
    "ServeSettings",
    "ServerConfig",
    "ServerDeps",
    "ServerUnreachable",
    "create_app",
    "load_serve_settings",
]

_LAZY = {
    "create_app": "agent.server.app",
    "ApiError": "agent.server.client",
    "EvolventClient": "agent.server.client",
    "ServerUnreachable": "agent.server.client",
    "ServeSettings": "agent.server.config",
    "ServerConfig": "agent.server.config",
    "load_serve_settings": "agent.server.config",
    "ServerDeps": "agent.server.deps",
}


def __getattr__(name: str) -> Any:
    # Lazy: the client must not drag in the agent, langgraph and chromadb.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agent.server' has no attribute {name!r}")
