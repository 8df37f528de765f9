"""Bearer API keys; each key acts in one namespace.

A request only ever sees its own namespace's runs, memories and tools: lookups are
filtered by namespace, so another namespace's resource answers 404 exactly like a missing
one, and its existence never leaks.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from agent.server.config import DEFAULT_NAMESPACE
from agent.server.deps import ServerDeps

bearer = HTTPBearer(
    auto_error=False,
    description="An API key from EVOLVENT_API_KEYS; it decides the namespace.",
)


class Principal(BaseModel):
    """Who is calling: the namespace the API key maps to."""

    namespace: str


def get_deps(request: Request) -> ServerDeps:
    deps: ServerDeps = request.app.state.deps
    return deps


def get_principal(
    deps: Annotated[ServerDeps, Depends(get_deps)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if not deps.auth_enabled:
        return Principal(namespace=DEFAULT_NAMESPACE)
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            401,
            "missing API key: send the header 'Authorization: Bearer KEY'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    namespace = deps.namespace_for(credentials.credentials)
    if namespace is None:
        raise HTTPException(401, "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    return Principal(namespace=namespace)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
