"""``/v1/memories``: list, search, inspect, delete, export and import learned memory."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from agent.server.auth import CurrentPrincipal, get_deps
from agent.server.deps import ServerDeps
from agent.server.models import (
    DeleteResult,
    ImportResult,
    MemoryItem,
    MemoryPage,
    error_responses,
    optional_schema,
)
from agent.server.ndjson import NDJSON_BODY, NDJSON_RESPONSE, body_lines, read_body, stream
from memory.records import MemoryKind, MemoryRecord
from memory.store import KINDS, MemoryStore

router = APIRouter(prefix="/v1/memories", tags=["memories"], responses=error_responses(401, 422))


def get_memory(
    who: CurrentPrincipal, deps: Annotated[ServerDeps, Depends(get_deps)]
) -> MemoryStore:
    """The caller's namespace's memory store."""
    return deps.memory(who.namespace)


Memory = Annotated[MemoryStore, Depends(get_memory)]
MemoryId = Annotated[str, Path(min_length=1, max_length=200)]


@router.get("", response_model=MemoryPage, summary="List or search memories")
def list_memories(
    store: Memory,
    kind: Annotated[MemoryKind | None, optional_schema(MemoryKind)] = None,
    query: Annotated[
        str | None,
        Query(min_length=1, max_length=2000, description="Nearest memories to this text"),
        optional_schema(str, minLength=1, maxLength=2000),
    ] = None,
    episode: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Only what this episode taught"),
        optional_schema(str, minLength=1, maxLength=200),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> MemoryPage:
    """Without ``query``: oldest first. With ``query``: by cosine similarity of the
    memory's key to the query (plain similarity: no Q re-ranking, no exploration). With
    ``episode``: only the memories whose provenance is that episode (what ``DELETE
    /v1/memories?episode=`` would delete), oldest first or, with ``query``, nearest first."""
    kinds = [k for k in KINDS if kind is None or k == kind]
    if episode is not None and query is None:
        taught = list(store.taught_by(episode, kinds))
        end = min(offset + limit, len(taught))
        return MemoryPage(
            items=[MemoryItem(**r.model_dump()) for r in taught[offset:end]],
            limit=limit,
            offset=offset,
            next_offset=end if end < len(taught) else None,
            total=len(taught),
        )
    if query is None:
        return _page(store, kinds, limit, offset)
    hits = store.nearest(query, kinds, offset + limit + 1, episode=episode)
    window = hits[offset : offset + limit + 1]
    items = [MemoryItem(**r.model_dump(), similarity=s) for r, s in window[:limit]]
    more = len(window) > limit
    return MemoryPage(
        items=items,
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
        total=None,
    )


def _page(store: MemoryStore, kinds: list[MemoryKind], limit: int, offset: int) -> MemoryPage:
    counts = store.stats()
    total = sum(counts.get(k, 0) for k in kinds)
    items: list[MemoryItem] = []
    seen = 0
    for k in kinds:
        if seen + counts.get(k, 0) <= offset:
            seen += counts.get(k, 0)  # skip a whole kind without reading it
            continue
        for rec in store.records(k):
            if seen >= offset:
                items.append(MemoryItem(**rec.model_dump()))
                if len(items) >= limit:
                    break
            seen += 1
        if len(items) >= limit:
            break
    end = offset + len(items)
    return MemoryPage(
        items=items,
        limit=limit,
        offset=offset,
        next_offset=end if end < total else None,
        total=total,
    )


@router.delete(
    "",
    response_model=DeleteResult,
    summary="Delete every memory one episode taught",
    responses=error_responses(404),
)
def delete_episode_memories(
    store: Memory,
    episode: Annotated[
        str, Query(min_length=1, max_length=200, description="The episode's thread id")
    ],
) -> DeleteResult:
    """Every record whose provenance is this episode (``evolvent memory delete --episode``);
    404 when it taught nothing that is still stored."""
    n = store.delete_episode(episode)
    if not n:
        raise HTTPException(404, f"no memory learned from episode {episode!r}")
    return DeleteResult(deleted=n)


@router.get(
    "/export",
    summary="Every memory of the namespace as JSON lines",
    response_class=StreamingResponse,
    responses=NDJSON_RESPONSE,
)
def export_memories(store: Memory) -> StreamingResponse:
    return stream(store.export())


@router.post(
    "/import",
    response_model=ImportResult,
    summary="Import memories from JSON lines (as written by export)",
    responses=error_responses(413),
    openapi_extra=NDJSON_BODY,
)
async def import_memories(request: Request, store: Memory) -> ImportResult:
    """Ids, values and provenance are kept; a record with an existing id replaces it.
    Nothing is imported when any line is invalid (422 names the line)."""
    body = await read_body(request)
    records = await run_in_threadpool(_parse_jsonl, body)
    n = await run_in_threadpool(store.import_records, records)
    return ImportResult(imported=n)


def _parse_jsonl(body: bytes) -> list[MemoryRecord]:
    rows: list[MemoryRecord] = []
    lines: dict[str, int] = {}
    for lineno, line in body_lines(body):
        try:
            rec = MemoryRecord.model_validate_json(line)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "line"
            raise HTTPException(
                422, f"line {lineno}: {where}: {err['msg']} (nothing was imported)"
            ) from None
        if rec.kind not in KINDS:
            raise HTTPException(422, f"line {lineno}: kind {rec.kind!r} cannot be stored here")
        if rec.id in lines:
            raise HTTPException(
                422,
                f"line {lineno}: id {rec.id!r} is on line {lines[rec.id]} too "
                "(nothing was imported)",
            )
        lines[rec.id] = lineno
        rows.append(rec)
    return rows


@router.get(
    "/{memory_id}",
    response_model=MemoryRecord,
    summary="One memory with its provenance",
    responses=error_responses(404),
)
def get_memory_record(memory_id: MemoryId, store: Memory) -> MemoryRecord:
    rec = store.get(memory_id)
    if rec is None:
        raise HTTPException(404, f"no memory {memory_id!r}")
    return rec


@router.delete(
    "/{memory_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a memory",
    responses=error_responses(404),
)
def delete_memory(memory_id: MemoryId, store: Memory) -> Response:
    if not store.delete(memory_id):
        raise HTTPException(404, f"no memory {memory_id!r}")
    return Response(status_code=204)
