"""``/v1/runs``: start, inspect, stream, cancel and resume runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from agent.server.auth import CurrentPrincipal
from agent.server.models import (
    FINAL_STATUSES,
    EndEvent,
    RunCreate,
    RunCreated,
    RunPage,
    RunStatus,
    RunView,
    error_responses,
    optional_schema,
)
from agent.server.runs import RunManager, run_view
from agent.server.store import RunStore

router = APIRouter(prefix="/v1", tags=["runs"], responses=error_responses(401, 422))

_WAKE_S = 30.0
"""Longest wait between two looks at a run whose worker might not notify (belt and braces)."""
_PAGE = 500
_SHUTDOWN_GRACE_S = 2.0
"""How long a stream has to end by itself once the server shuts down."""


def get_runs(request: Request) -> RunManager:
    runs: RunManager = request.app.state.runs
    return runs


Runs = Annotated[RunManager, Depends(get_runs)]
RunId = Annotated[str, Path(min_length=1, max_length=100, description="Run id from POST /v1/runs")]


@router.get("/envs", response_model=list[str], summary="Valid environment ids")
def list_envs(who: CurrentPrincipal) -> list[str]:
    from benchmarks.envs.registry import ENV_IDS

    return list(ENV_IDS)


@router.post(
    "/runs",
    status_code=202,
    response_model=RunCreated,
    summary="Start a run",
    responses=error_responses(413, 429, 503),
)
def create_run(
    body: RunCreate, who: CurrentPrincipal, runs: Runs, response: Response
) -> RunCreated:
    """Queue one episode of ``env`` (with ``seed``) or a free-text ``task``; it starts as
    soon as a worker is free. 429 when the server's concurrent-run limit is reached."""
    row = runs.create(who.namespace, body)
    response.headers["Location"] = f"/v1/runs/{row.id}"
    return RunCreated(id=row.id, status="queued")


@router.get("/runs", response_model=RunPage, summary="List runs, newest first")
def list_runs(
    who: CurrentPrincipal,
    runs: Runs,
    status: Annotated[RunStatus | None, optional_schema(RunStatus)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> RunPage:
    rows = runs.store.list_runs(who.namespace, status, limit + 1, offset)
    more = len(rows) > limit
    return RunPage(
        items=[run_view(r) for r in rows[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
    )


@router.get(
    "/runs/{run_id}",
    response_model=RunView,
    summary="Status and result of a run",
    responses=error_responses(404),
)
def get_run(run_id: RunId, who: CurrentPrincipal, runs: Runs) -> RunView:
    return run_view(runs.get(who.namespace, run_id))


@router.post(
    "/runs/{run_id}/cancel",
    status_code=202,
    response_model=RunView,
    summary="Cancel a run",
    responses=error_responses(404, 409),
)
def cancel_run(run_id: RunId, who: CurrentPrincipal, runs: Runs) -> RunView:
    """A queued or interrupted run is cancelled at once; a running one stops after its
    current step (``cancel_requested`` until then). 409 for a finished run."""
    return run_view(runs.cancel(who.namespace, run_id))


@router.post(
    "/runs/{run_id}/resume",
    status_code=202,
    response_model=RunView,
    summary="Resume an interrupted run",
    responses=error_responses(404, 409, 429, 503),
)
def resume_run(run_id: RunId, who: CurrentPrincipal, runs: Runs) -> RunView:
    """Continue a run that a server restart interrupted, from its last checkpoint."""
    return run_view(runs.resume(who.namespace, run_id))


@router.get(
    "/runs/{run_id}/events",
    summary="Server-sent events: one per step, then 'end'",
    response_class=EventSourceResponse,
    response_model=None,
    responses={
        200: {
            "description": "Event stream. `event: step` (data: a StepView as JSON, id: its "
            "position in the trajectory), then one `event: end` (data: EndEvent) once the run "
            "is succeeded, failed or cancelled.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "The run is over and the client has seen every event"},
        **error_responses(404),
    },
)
async def run_events(
    run_id: RunId,
    who: CurrentPrincipal,
    runs: Runs,
    last_event_id: Annotated[
        int | None,
        Header(
            ge=-1,
            le=100_000_000,
            description="Replay only events after this id (EventSource sends it on reconnect)",
        ),
        optional_schema(int, minimum=-1, maximum=100_000_000),
    ] = None,
) -> Response:
    after = -1 if last_event_id is None else last_event_id
    row = await run_in_threadpool(runs.get, who.namespace, run_id)
    if row.status in FINAL_STATUSES and after >= row.events:
        return Response(status_code=204)
    # When the server shuts down, the stream ends cleanly (a client reconnects with its
    # Last-Event-ID once the server is back); cut off, it left uvicorn's log an ERROR.
    shutdown = anyio.Event()
    return EventSourceResponse(
        _stream(runs.store, runs, run_id, after, shutdown),
        ping=int(max(1.0, runs.deps.config.sse_ping_s)),
        shutdown_event=shutdown,
        shutdown_grace_period=_SHUTDOWN_GRACE_S,
    )


async def _stream(
    store: RunStore, runs: RunManager, run_id: str, after: int, shutdown: anyio.Event
) -> AsyncIterator[ServerSentEvent]:
    with runs.notifier.listen(run_id) as changed:
        while not shutdown.is_set():
            changed.clear()
            # Status first: a final status is written after the last event, so the events
            # read next are complete.
            row = await run_in_threadpool(store.get, run_id)
            events = await run_in_threadpool(store.events, run_id, after, _PAGE)
            for seq, data in events:
                yield ServerSentEvent(data=data, id=str(seq), event="step")
                after = seq
            if len(events) == _PAGE or row is None:
                if row is None:
                    return
                continue
            if row.status in FINAL_STATUSES:
                if row.events > after:
                    view = run_view(row)
                    end = EndEvent(status=view.status, error=view.error, result=view.result)
                    yield ServerSentEvent(
                        data=end.model_dump_json(), id=str(row.events), event="end"
                    )
                return
            await _either(changed, shutdown, _WAKE_S)
        yield ServerSentEvent(comment="the server is shutting down; reconnect with Last-Event-ID")


async def _either(changed: asyncio.Event, shutdown: anyio.Event, timeout: float) -> None:
    """Until the run changes, the server shuts down or ``timeout`` passes."""
    with anyio.move_on_after(timeout):
        async with anyio.create_task_group() as group:

            async def first(wait: Callable[[], Awaitable[object]]) -> None:
                await wait()
                group.cancel_scope.cancel()

            group.start_soon(first, changed.wait)
            group.start_soon(first, shutdown.wait)
