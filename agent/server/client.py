"""``EvolventClient``: a typed Python client of the REST API.

>>> with EvolventClient("http://127.0.0.1:8080", api_key="KEY") as api:
...     run = api.create_run("toy:keys", seed=3, max_steps=10)
...     for event in api.events(run.id):
...         print(event.step or event.end)
...     print(api.get_run(run.id).result)
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from agent.result import StepView
from agent.server.models import (
    FINAL_STATUSES,
    EndEvent,
    MemoryPage,
    Readiness,
    RunCreated,
    RunPage,
    RunStatus,
    RunView,
)
from memory.records import MemoryKind, MemoryRecord
from toolsmith.models import Tool, ToolStatus


class ApiError(Exception):
    """A non-2xx answer: the HTTP status and the server's readable ``detail``."""

    def __init__(self, status_code: int, detail: str, errors: list[Any] | None = None) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.errors = errors or []


class ServerUnreachable(ConnectionError):
    """The server did not answer at all (not started, gone, a wrong URL)."""

    def __init__(self, base_url: str, detail: str) -> None:
        super().__init__(f"cannot reach the Evolvent server at {base_url}: {detail}")
        self.base_url = base_url


class RunEvent(BaseModel):
    """One server-sent event of a run: ``step`` (data: a StepView) or ``end``."""

    id: int | None
    event: str
    data: str

    @property
    def step(self) -> StepView | None:
        return StepView.model_validate_json(self.data) if self.event == "step" else None

    @property
    def end(self) -> EndEvent | None:
        return EndEvent.model_validate_json(self.data) if self.event == "end" else None


class EvolventClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        http: Any = None,
    ) -> None:
        """``http``: an existing ``httpx.Client``, or a client with its interface (FastAPI's
        ``TestClient``), to send through; ``base_url`` is then its own."""
        self._owns_http = http is None
        self.http: httpx.Client = http or httpx.Client(base_url=base_url, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def close(self) -> None:
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> EvolventClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs -------------------------------------------------------------------------

    def create_run(
        self,
        env: str | None = None,
        *,
        task: str | None = None,
        seed: int = 0,
        max_steps: int | None = None,
        token_budget: int | None = None,
    ) -> RunCreated:
        body: dict[str, Any] = {"env": env, "task": task, "seed": seed}
        body |= {"max_steps": max_steps, "token_budget": token_budget}
        payload = {k: v for k, v in body.items() if v is not None}
        return RunCreated.model_validate(self._json("POST", "/v1/runs", json=payload))

    def get_run(self, run_id: str) -> RunView:
        return RunView.model_validate(self._json("GET", f"/v1/runs/{_q(run_id)}"))

    def list_runs(
        self, status: RunStatus | None = None, limit: int = 50, offset: int = 0
    ) -> RunPage:
        params = _params(status=status, limit=limit, offset=offset)
        return RunPage.model_validate(self._json("GET", "/v1/runs", params=params))

    def wait(self, run_id: str, timeout: float = 300.0, poll_s: float = 0.1) -> RunView:
        """Poll until the run is succeeded, failed or cancelled (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run.status in FINAL_STATUSES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout:g} s")
            time.sleep(poll_s)

    def cancel_run(self, run_id: str) -> RunView:
        return RunView.model_validate(self._json("POST", f"/v1/runs/{_q(run_id)}/cancel"))

    def resume_run(self, run_id: str) -> RunView:
        return RunView.model_validate(self._json("POST", f"/v1/runs/{_q(run_id)}/resume"))

    def events(
        self, run_id: str, last_event_id: int | None = None
    ) -> Generator[RunEvent, None, None]:
        """The run's events after ``last_event_id``, as they happen; ends after ``end``.

        A stream the server closes before the run's end (it is shutting down) raises
        ``ApiError`` 503: call again with the last event's id once the server is back."""
        headers = dict(self.headers)
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        url = f"/v1/runs/{_q(run_id)}/events"
        with self._reaching(), self.http.stream("GET", url, headers=headers, timeout=None) as resp:
            if resp.status_code == 204:
                return
            if resp.status_code >= 300:
                resp.read()
                _raise(resp)
            fields: dict[str, str] = {}
            data: list[str] = []
            seen = last_event_id
            for line in resp.iter_lines():
                if not line:
                    if data:
                        raw_id = fields.get("id")
                        event = RunEvent(
                            id=int(raw_id) if raw_id and raw_id.isdigit() else None,
                            event=fields.get("event", "message"),
                            data="\n".join(data),
                        )
                        seen = event.id if event.id is not None else seen
                        yield event
                        if event.event == "end":
                            return
                    fields, data = {}, []
                    continue
                if line.startswith(":"):
                    continue  # keep-alive comment
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "data":
                    data.append(value)
                else:
                    fields[name] = value
        raise ApiError(
            503,
            f"the server closed the event stream of run {run_id} before the run ended (it "
            f"is shutting down); read on with events({run_id!r}, last_event_id={seen}) once "
            "it is back",
        )

    def envs(self) -> list[str]:
        return [str(e) for e in self._json("GET", "/v1/envs")]

    # -- memories ---------------------------------------------------------------------

    def memories(
        self,
        kind: MemoryKind | None = None,
        query: str | None = None,
        limit: int = 20,
        offset: int = 0,
        episode: str | None = None,
    ) -> MemoryPage:
        """A page of memories: oldest first, nearest to ``query``, or only what ``episode``
        taught."""
        params = _params(kind=kind, query=query, limit=limit, offset=offset, episode=episode)
        return MemoryPage.model_validate(self._json("GET", "/v1/memories", params=params))

    def memory(self, memory_id: str) -> MemoryRecord:
        return MemoryRecord.model_validate(self._json("GET", f"/v1/memories/{_q(memory_id)}"))

    def delete_memory(self, memory_id: str) -> None:
        self._send("DELETE", f"/v1/memories/{_q(memory_id)}")

    def delete_episode_memories(self, episode: str) -> int:
        """Delete every memory one episode taught; how many."""
        out = self._json("DELETE", "/v1/memories", params={"episode": episode})
        return int(out["deleted"])

    def export_memories(self) -> Iterator[MemoryRecord]:
        for line in self._lines("/v1/memories/export"):
            yield MemoryRecord.model_validate_json(line)

    def import_memories(self, records: Iterable[MemoryRecord | dict[str, Any]]) -> int:
        lines = [
            r.model_dump_json() if isinstance(r, MemoryRecord) else json.dumps(r) for r in records
        ]
        return self._post_lines("/v1/memories/import", lines)

    # -- tools ------------------------------------------------------------------------

    def tools(self, status: ToolStatus | None = None, episode: str | None = None) -> list[Tool]:
        """The namespace's tools by name; with ``episode``, those mined from it."""
        rows = self._json("GET", "/v1/tools", params=_params(status=status, episode=episode))
        return [Tool.model_validate(t) for t in rows]

    def tool(self, name: str) -> Tool:
        return Tool.model_validate(self._json("GET", f"/v1/tools/{_q(name)}"))

    def disable_tool(self, name: str) -> Tool:
        return Tool.model_validate(self._json("POST", f"/v1/tools/{_q(name)}/disable"))

    def enable_tool(self, name: str) -> Tool:
        return Tool.model_validate(self._json("POST", f"/v1/tools/{_q(name)}/enable"))

    def delete_tool(self, name: str) -> None:
        self._send("DELETE", f"/v1/tools/{_q(name)}")

    def tool_versions(self, name: str) -> list[Tool]:
        """Every version of ``name``, oldest first."""
        rows = self._json("GET", f"/v1/tools/{_q(name)}/versions")
        return [Tool.model_validate(t) for t in rows]

    def rollback_tool(self, name: str, version: int) -> Tool:
        body = {"version": version}
        return Tool.model_validate(self._json("POST", f"/v1/tools/{_q(name)}/rollback", json=body))

    def export_tools(self) -> Iterator[dict[str, Any]]:
        """Every tool as its export row (the tool's fields and ``versions``)."""
        for line in self._lines("/v1/tools/export"):
            yield json.loads(line)

    def import_tools(self, rows: Iterable[dict[str, Any]]) -> int:
        """Import export rows (``export_tools``); all or none."""
        return self._post_lines("/v1/tools/import", [json.dumps(r, sort_keys=True) for r in rows])

    # -- operations -------------------------------------------------------------------

    def healthy(self) -> bool:
        """The server answers ``/healthz`` with 200 (False when it does not answer)."""
        try:
            return self.http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def readiness(self) -> Readiness:
        with self._reaching():
            return Readiness.model_validate(self.http.get("/readyz").json())

    def metrics(self) -> str:
        with self._reaching():
            return self.http.get("/metrics").text

    # -- internals --------------------------------------------------------------------

    @contextmanager
    def _reaching(self) -> Iterator[None]:
        """A request that gets no answer is ``ServerUnreachable`` naming the URL."""
        try:
            yield
        except httpx.TransportError as e:
            raise ServerUnreachable(str(self.http.base_url), str(e) or type(e).__name__) from None

    def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        kw["headers"] = kw.get("headers") or self.headers
        with self._reaching():
            resp = self.http.request(method, url, **kw)
        if resp.status_code >= 300:  # a redirect is not what any call asks for
            _raise(resp)
        return resp

    def _json(self, method: str, url: str, **kw: Any) -> Any:
        return self._send(method, url, **kw).json()

    def _lines(self, url: str) -> Iterator[str]:
        """The non-blank lines of a JSON-lines answer, as they arrive."""
        with self._reaching(), self.http.stream("GET", url, headers=self.headers) as resp:
            if resp.status_code >= 300:
                resp.read()
                _raise(resp)
            for line in resp.iter_lines():
                if line.strip():
                    yield line

    def _post_lines(self, url: str, lines: Sequence[str]) -> int:
        """POST JSON lines to an import endpoint; how many it imported."""
        body = "".join(line + "\n" for line in lines).encode()
        headers = {**self.headers, "Content-Type": "application/x-ndjson"}
        return int(self._json("POST", url, content=body, headers=headers)["imported"])


def _q(segment: str) -> str:
    """A run id, memory id or tool name as a path segment; a blank one is a ``ValueError``
    (it would name the collection instead, and a DELETE there is redirected, not done)."""
    if not segment.strip():
        raise ValueError("an id or a name must not be blank")
    return quote(segment, safe="")


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _raise(resp: httpx.Response) -> None:
    try:
        body = resp.json()
        detail = str(body.get("detail", resp.text))
        errors = body.get("errors", [])
    except (json.JSONDecodeError, AttributeError):
        detail, errors = resp.text or resp.reason_phrase, []
    raise ApiError(resp.status_code, detail, errors)
