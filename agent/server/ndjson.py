"""JSON-lines bodies: the export endpoints' responses and the import endpoints' requests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import StreamingResponse

NDJSON = "application/x-ndjson"

NDJSON_BODY: dict[str, Any] = {
    "requestBody": {"required": False, "content": {NDJSON: {"schema": {"type": "string"}}}}
}
"""``openapi_extra`` of an import endpoint: its body is JSON lines."""

NDJSON_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {NDJSON: {"schema": {"type": "string"}}}}
}
"""``responses`` of an export endpoint."""


def stream(rows: Iterable[dict[str, Any]]) -> StreamingResponse:
    """One sorted-key JSON object per line, sent as the rows come."""

    def lines() -> Iterator[bytes]:
        for row in rows:
            yield (json.dumps(row, sort_keys=True) + "\n").encode()

    return StreamingResponse(lines(), media_type=NDJSON)


async def read_body(request: Request) -> bytes:
    """The whole request body (the body-size middleware caps it)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
    return bytes(body)


def body_lines(body: bytes) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a UTF-8 body, with their numbers (422 if not UTF-8)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, "the body is not UTF-8 text") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield lineno, line
