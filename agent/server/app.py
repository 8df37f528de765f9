"""``create_app()``: the FastAPI application of ``evolvent serve``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

import agent as agent_pkg
from agent.errors import validation_message
from agent.server import routes_memory, routes_runs, routes_tools
from agent.server.auth import get_deps
from agent.server.config import ServeSettings, load_serve_settings
from agent.server.deps import ServerDeps
from agent.server.limits import BodyLimitMiddleware
from agent.server.metrics import Metrics, MetricsMiddleware
from agent.server.models import ErrorBody, FieldError, Health, Readiness
from agent.server.paths import documented_path
from agent.server.runs import RunError, RunManager

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], dict[str, str]]

DESCRIPTION = """\
Run the self-improving agent over HTTP: start runs (one episode of an environment, or a
free-text task), follow their steps as server-sent events, cancel and resume them; inspect,
search, export and import the memory it learned; list and switch its tools.

Every `/v1` endpoint needs `Authorization: Bearer KEY`; the key decides the namespace, and a
namespace never sees another one's runs, memories or tools (they answer 404).
"""


def create_app(deps: ServerDeps | None = None, *, settings: ServeSettings | None = None) -> FastAPI:
    """The app. With ``deps`` (tests, embedding, ``evolvent serve``) it runs on them and the
    caller closes them; without, it builds them at startup from ``settings`` (default: env
    vars and config file) and closes them at shutdown. Each startup gets a fresh run manager,
    so the app can be started again after a shutdown."""
    if deps is None:
        settings = settings or load_serve_settings()
        server_cfg = settings.server
    else:
        server_cfg = deps.config
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built: ServerDeps | None = None
        if deps is None:
            assert settings is not None
            built = await run_in_threadpool(ServerDeps.from_settings, settings)
            _attach(app, built, metrics)
        elif app.state.runs.closed:
            _attach(app, deps, metrics)
        runs: RunManager = app.state.runs
        app.state.deps.warm_up()
        try:
            yield
        finally:
            await run_in_threadpool(runs.shutdown)
            if built is not None:
                await run_in_threadpool(built.close)

    app = FastAPI(
        title="Evolvent",
        version=agent_pkg.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        dependencies=[Depends(reject_unknown_query)],
    )
    if deps is not None:
        _attach(app, deps, metrics)  # usable even by clients that skip the lifespan
    app.state.metrics = metrics
    app.add_middleware(BodyLimitMiddleware, max_bytes=server_cfg.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts 413s too
    _error_handlers(app)
    app.include_router(routes_runs.router)
    app.include_router(routes_memory.router)
    app.include_router(routes_tools.router)
    _probes(app)
    _document_limits(app, server_cfg.max_steps_limit)
    return app


def _document_limits(app: FastAPI, max_steps: int) -> None:
    """Put this server's own step limit into the schema clients and fuzzers read."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        schema = plain()
        props = schema["components"]["schemas"]["RunCreate"]["properties"]
        props["max_steps"]["maximum"] = max_steps
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _attach(app: FastAPI, deps: ServerDeps, metrics: Metrics) -> None:
    app.state.deps = deps
    runs = RunManager(deps, metrics)
    runs.recover()  # before this manager accepts its first run
    app.state.runs = runs


_query_names: dict[int, frozenset[str]] = {}


def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not take (a typo, ``?staus=``, must not
    silently widen a listing) or one given twice."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    names = _query_names.get(id(route))
    if names is None:
        names = _query_names[id(route)] = frozenset(_declared_query(dependant))
    unknown = sorted(set(request.query_params) - names)
    if unknown:
        valid = ", ".join(sorted(names)) or "none"
        raise HTTPException(
            422, f"unknown query parameter(s) {', '.join(map(repr, unknown))}; valid: {valid}"
        )
    # No parameter takes a list: ?status=a&status=b kept only the last, and answered as if
    # the first had not been asked for.
    repeated = sorted({k for k in request.query_params if len(request.query_params.getlist(k)) > 1})
    if repeated:
        raise HTTPException(
            422, f"query parameter(s) {', '.join(map(repr, repeated))} given more than once"
        )


def _declared_query(dependant: Any) -> set[str]:
    names = {str(f.alias) for f in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return names


def get_readiness(deps: Annotated[ServerDeps, Depends(get_deps)]) -> ReadinessCheck:
    """What ``/readyz`` runs; override it in tests to simulate a dead dependency."""
    return lambda: {"llm": deps.check_llm(), "store": deps.check_stores()}


def _probes(app: FastAPI) -> None:
    @app.get("/healthz", response_model=Health, tags=["ops"], summary="The process answers")
    def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        response_model=Readiness,
        tags=["ops"],
        summary="The LLM endpoint and the stores answer",
        responses={503: {"model": Readiness, "description": "Not ready"}},
    )
    def readyz(check: Annotated[ReadinessCheck, Depends(get_readiness)]) -> JSONResponse:
        checks = check()
        ok = all(v == "ok" for v in checks.values())
        body = Readiness(status="ready" if ok else "not ready", checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def metrics(request: Request) -> Response:
        m: Metrics = request.app.state.metrics
        return Response(m.render(), media_type=m.content_type)


def _error_handlers(app: FastAPI) -> None:
    def error(status: int, detail: str, errors: list[FieldError] | None = None, **kw: Any) -> Any:
        body = ErrorBody(detail=detail, errors=errors or [])
        return JSONResponse(body.model_dump(), status_code=status, **kw)

    @app.exception_handler(RunError)
    async def run_error(request: Request, exc: RunError) -> Response:
        headers = {"Retry-After": "1"} if exc.status_code in (429, 503) else None
        result: Response = error(exc.status_code, exc.detail, headers=headers)
        return result

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = exc.headers
        if exc.status_code == 400:
            # FastAPI's only 400: a body it could not decode (e.g. not UTF-8). Bad input: 422.
            result400: Response = error(422, "invalid request: the body is not readable JSON")
            return result400
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; list them all.
            headers = {**(headers or {}), "Allow": ", ".join(_allowed(request))}
        result: Response = error(exc.status_code, str(exc.detail), headers=headers)
        return result

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = [
            FieldError(
                loc=[p for p in e.get("loc", ()) if isinstance(p, str | int)],
                msg=validation_message(e),
            )
            for e in exc.errors()
        ]
        summary = "; ".join(
            f"{'.'.join(str(p) for p in f.loc[1:] or f.loc)}: {f.msg}" if f.loc else f.msg
            for f in fields
        )
        kind = request.headers.get("content-type", "")
        if any(f.loc[:1] == ["body"] for f in fields) and "json" not in kind.lower():
            # curl -d sends a form unless told otherwise: say what this endpoint reads
            summary += f" (the body was sent as {kind or 'no type'}; send JSON with "
            summary += "Content-Type: application/json)"
        result: Response = error(422, f"invalid request: {summary}", fields)
        return result

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        result: Response = error(500, "internal server error (see the server log)")
        return result


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed(request: Request) -> list[str]:
    """The methods of the path: those the API documents for the first path template that
    matches it (as the router picks it: ``/v1/memories/export`` before ``/{memory_id}``),
    else those some route answers (FastAPI no longer flattens included routers, so asking
    the routes themselves is the way to find them)."""
    documented = documented_path(request.app, request.url.path)
    if documented is not None:
        return sorted(m.upper() for m in documented[1] if m.upper() in _METHODS)
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL
            for route in request.app.routes
        )
    ]
