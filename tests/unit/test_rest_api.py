"""The REST API: runs, event streams, cancel/resume, auth isolation, 413/422/429."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from rest_support import KEYS, A, B, Gate, Served, auth, long_seed, serve

from agent.checkpoint import CheckpointStore
from agent.errors import EvolventError
from agent.graph import build_graph
from agent.llm.base import LLMClient
from agent.server.client import ApiError, EvolventClient, RunEvent, ServerUnreachable
from agent.server.config import ServerConfig
from agent.server.models import RunCreated
from agent.server.store import RunRow, RunStore
from agent.server.testing import quiet_settings


def wait_events(api: EvolventClient, run_id: str, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while api.get_run(run_id).events < n:
        assert time.monotonic() < deadline, f"run {run_id} never reached {n} events"
        time.sleep(0.01)


def checkpointed_steps(home: Path, thread_id: str) -> int:
    store = CheckpointStore(quiet_settings(home).checkpoint_path)
    try:
        state = build_graph(store.saver).get_state({"configurable": {"thread_id": thread_id}})
        return len(state.values.get("steps", []))
    finally:
        store.close()


@contextmanager
def one_running_one_queued(home: Path) -> Iterator[tuple[Served, Gate, RunCreated, RunCreated]]:
    """A server with room for one run: one running (its first step taken, the next waiting
    for the gate) and one queued behind it."""
    gate = Gate(policy="look")
    config = ServerConfig(max_concurrent_runs=1, max_queued_runs=1)
    with serve(home, config, gate=gate) as s:
        running = s.a.create_run("toy:keys", seed=1, max_steps=10)
        queued = s.a.create_run("toy:keys", seed=1, max_steps=10)
        gate.open()
        wait_events(s.a, running.id, 1)
        yield s, gate, running, queued


def told(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the run manager wrote to the server's log."""
    return [r.getMessage() for r in caplog.records if r.name == "agent.server.runs"]


def test_a_run_plays_and_reports_its_result(
    evolvent_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.server.runs")
    seed = long_seed()
    with serve(evolvent_home) as s:
        resp = s.http.post(
            "/v1/runs", json={"env": "toy:keys", "seed": seed, "max_steps": 12}, headers=auth(A)
        )
        assert resp.status_code == 202, resp.text
        run_id = resp.json()["id"]
        assert resp.headers["location"] == f"/v1/runs/{run_id}"
        run = s.a.wait(run_id, timeout=20)
        assert run.status == "succeeded" and run.error is None
        assert run.result is not None and run.result.success
        assert run.result.steps == run.events >= 4 and run.result.thread_id == run_id
        assert run.max_steps == 12 and run.seed == seed and run.started_at is not None
        assert [r.id for r in s.a.list_runs().items] == [run_id]
        text = s.a.wait(s.a.create_run(task="What is 2 + 2? Answer with a number.").id)
        assert text.status == "succeeded" and text.env == "text" and text.result is not None
        assert text.result.steps == 1
        assert {r.id for r in s.a.list_runs(status="succeeded").items} == {run_id, text.id}
    # The server's log tells each run's life in a line per change, without a task's text.
    log = told(caplog)
    assert log[:2] == [
        f"run {run_id} queued (namespace alpha): toy:keys seed {seed}, at most 12 steps",
        f"run {run_id} started",
    ]
    assert re.fullmatch(
        rf"run {run_id} succeeded after \d+\.\d s: won, score 2/2 in {run.result.steps} steps",
        log[2],
    )
    assert log[3:5] == [
        f"run {text.id} queued (namespace alpha): a text task, at most 20 steps",
        f"run {text.id} started",
    ]
    assert re.fullmatch(
        rf"run {text.id} succeeded after \d+\.\d s: not won, score 0/0 in 1 step", log[5]
    )


def test_events_arrive_per_step_and_a_reconnect_resumes_after_the_last_id(
    evolvent_home: Path,
) -> None:
    gate = Gate(policy="look")
    with serve(evolvent_home, gate=gate) as s:
        run = s.a.create_run("toy:keys", seed=1, max_steps=4)
        stream = s.a.events(run.id)
        gate.open()
        first = next(stream)
        assert first.event == "step" and first.id == 0
        assert first.step is not None and first.step.action == "look"
        # The event came while the run still plays: it waits at the gate for its next action.
        now = s.a.get_run(run.id)
        assert now.status == "running" and now.events == 1
        gate.open()
        assert next(stream).id == 1
        stream.close()  # the client goes away ...
        gate.open()
        wait_events(s.a, run.id, 3)
        again = s.a.events(run.id, last_event_id=1)  # ... and reconnects
        assert next(again).id == 2
        gate.open()
        rest = list(again)
        assert [(e.id, e.event) for e in rest] == [(3, "step"), (4, "end")]
        end = rest[-1].end
        assert end is not None and end.status == "succeeded"
        assert end.result is not None and end.result.steps == 4


def test_replay_after_the_run_sends_only_later_events(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        run_id = s.a.create_run("toy:keys", seed=long_seed(), max_steps=12).id
        done = s.a.wait(run_id)
        n = done.events
        everything = list(s.a.events(run_id))
        assert [e.id for e in everything] == list(range(n + 1))
        assert [e.event for e in everything] == ["step"] * n + ["end"]
        later = list(s.a.events(run_id, last_event_id=1))
        assert [e.model_dump() for e in later] == [e.model_dump() for e in everything[2:]]
        assert done.result is not None and done.result.steps == n
        url = f"/v1/runs/{run_id}/events"
        assert s.http.get(url, headers={**auth(A), "Last-Event-ID": str(n)}).status_code == 204
        bad = s.http.get(url, headers={**auth(A), "Last-Event-ID": "seven"})
        assert (
            bad.status_code == 422
            and "last-event-id: Input should be a valid integer" in (bad.json()["detail"])
        )


def test_api_keys_are_required(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        for headers in ({}, auth("wrong-key"), {"Authorization": "Basic a2V5LWFscGhhOg=="}):
            r = s.http.get("/v1/runs", headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"] == "Bearer"
        assert s.http.post("/v1/runs", json={"env": "toy:keys"}).status_code == 401
        assert s.http.get("/v1/memories").status_code == 401
        assert s.http.get("/v1/tools").status_code == 401
        assert s.http.get("/healthz").status_code == 200


def test_one_namespace_cannot_see_or_touch_another_ones_runs(evolvent_home: Path) -> None:
    gate = Gate(policy="look")
    with serve(evolvent_home, gate=gate) as s:
        mine = s.a.create_run("toy:keys", seed=2, max_steps=2)
        for method, path in [
            ("GET", f"/v1/runs/{mine.id}"),
            ("GET", f"/v1/runs/{mine.id}/events"),
            ("POST", f"/v1/runs/{mine.id}/cancel"),
            ("POST", f"/v1/runs/{mine.id}/resume"),
            ("GET", "/v1/runs/run-does-not-exist"),
        ]:
            r = s.http.request(method, path, headers=auth(B))
            assert r.status_code == 404, (method, path, r.text)
            # Exactly what a missing run answers: existence does not leak.
            assert "no run" in r.json()["detail"]
        assert s.b.list_runs().items == []
        gate.open(2)
        assert s.a.wait(mine.id).status == "succeeded"  # B's cancel did nothing


def test_invalid_payloads_get_readable_422s(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        cases: list[tuple[object, str]] = [
            ({"env": "nope"}, "valid ids: textworld:cooking"),
            ({"env": "toy:keys", "task": "x"}, 'exactly one of "env" or "task"'),
            ({}, 'exactly one of "env" or "task"'),
            ({"env": "toy:keys", "llm": {"base_url": "http://x"}}, "llm: Extra inputs"),
            ({"env": "toy:keys", "seed": -1}, "seed: Input should be greater than or equal"),
            ({"env": "toy:keys", "max_steps": 600}, "over this server's limit of 500"),
            ({"env": "textworld:cooking:level=3"}, "take no level"),
            ({"task": "   "}, "task must not be blank"),
            ([1, 2], "Input should be a valid dictionary"),
        ]
        for body, expected in cases:
            r = s.http.post("/v1/runs", json=body, headers=auth(A))
            assert r.status_code == 422, (body, r.text)
            assert expected in r.json()["detail"], (body, r.json())
        r = s.http.post(
            "/v1/runs",
            content=b'{"env": ',
            headers={**auth(A), "Content-Type": "application/json"},
        )
        assert r.status_code == 422 and "JSON decode error" in r.json()["detail"]
        form = {**auth(A), "Content-Type": "application/x-www-form-urlencoded"}  # curl -d
        r = s.http.post("/v1/runs", content=b'{"env": "toy:keys"}', headers=form)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].endswith(
            "(the body was sent as application/x-www-form-urlencoded; send JSON with "
            "Content-Type: application/json)"
        )
        assert s.http.get("/v1/runs?limit=0", headers=auth(A)).status_code == 422
        for query, message in [
            ("staus=failed", "unknown query parameter(s) 'staus'; valid: limit, offset, status"),
            ("status=succeeded&status=failed", "'status' given more than once"),
        ]:
            r = s.http.get(f"/v1/runs?{query}", headers=auth(A))
            assert r.status_code == 422 and message in r.json()["detail"], r.text
        assert s.http.get("/v1/memories?kind=bogus", headers=auth(A)).status_code == 422
        assert s.a.list_runs().items == []  # nothing invalid was started


def test_a_wrong_method_names_the_allowed_ones(evolvent_home: Path) -> None:
    # The routes of included routers were missed: `Allow:` was empty under /v1.
    with serve(evolvent_home) as s:
        for method, path, allowed in [
            ("DELETE", "/v1/runs", "GET, POST"),
            ("PUT", "/v1/runs/run-x", "GET"),
            ("GET", "/v1/runs/run-x/cancel", "POST"),
            ("PUT", "/v1/memories", "DELETE, GET"),
            ("POST", "/healthz", "GET"),
        ]:
            r = s.http.request(method, path, headers=auth(A))
            assert (r.status_code, r.headers.get("allow")) == (405, allowed), (method, path)


def test_bodies_over_the_limit_get_413(evolvent_home: Path) -> None:
    with serve(evolvent_home, ServerConfig(max_body_bytes=2048)) as s:
        big = {"task": "x" * 4000}
        r = s.http.post("/v1/runs", json=big, headers=auth(A))
        assert r.status_code == 413 and "2048 bytes" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: only the streamed size tells
            yield b'{"task": "'
            for _ in range(4):
                yield b"y" * 1024
            yield b'"}'

        for path in ("/v1/runs", "/v1/memories/import"):
            r = s.http.post(path, content=chunks(), headers=auth(A))
            assert r.status_code == 413, (path, r.text)
        assert s.http.post("/v1/runs", json={"task": "short"}, headers=auth(A)).status_code == 202
        # Counted under their route (a real server: tests/integration/test_rest_restart.py).
        metrics = s.http.get("/metrics").text
        for path in ("/v1/runs", "/v1/memories/import"):
            assert f'route="{path}",status="413"' in metrics, path


def test_the_concurrent_run_cap_answers_429(evolvent_home: Path) -> None:
    gate = Gate(policy="look")
    config = ServerConfig(max_concurrent_runs=1, max_queued_runs=1)
    with serve(evolvent_home, config, gate=gate) as s:
        first = s.a.create_run("toy:keys", seed=1, max_steps=2)
        second = s.b.create_run("toy:keys", seed=1, max_steps=2)
        r = s.http.post("/v1/runs", json={"env": "toy:keys"}, headers=auth(A))
        assert r.status_code == 429 and r.headers["retry-after"] == "1"
        assert "the limit is 2" in r.json()["detail"]
        assert s.b.get_run(second.id).status == "queued"
        gate.open(4)
        assert s.a.wait(first.id).status == "succeeded"
        assert s.b.wait(second.id).status == "succeeded"
        gate.open(2)
        assert s.a.wait(s.a.create_run("toy:keys", seed=2, max_steps=2).id).status == "succeeded"


def test_cancel_stops_after_the_current_step_and_keeps_the_checkpoint(
    evolvent_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.server.runs")
    with one_running_one_queued(evolvent_home) as (s, gate, running, queued):
        asked = s.a.cancel_run(running.id)
        assert asked.status == "running" and asked.cancel_requested
        assert s.a.cancel_run(queued.id).status == "cancelled"
        gate.open()
        done = s.a.wait(running.id)
        assert done.status == "cancelled" and done.events == 2 and done.result is None
        events = list(s.a.events(running.id))
        assert [e.event for e in events] == ["step", "step", "end"]
        end = events[-1].end
        assert end is not None and end.status == "cancelled"
        for run_id in (running.id, queued.id):
            with pytest.raises(ApiError) as err:
                s.a.cancel_run(run_id)
            assert err.value.status_code == 409 and "already cancelled" in err.value.detail
        with pytest.raises(ApiError) as err:
            s.a.resume_run(running.id)
        assert err.value.status_code == 409
        assert s.a.get_run(queued.id).started_at is None
    # The checkpoint holds exactly the steps the events reported.
    assert checkpointed_steps(evolvent_home, running.id) == 2
    log = told(caplog)
    i = log.index(f"run {running.id} to be cancelled after its current step (namespace alpha)")
    assert log[i + 1] == f"run {queued.id} cancelled before it started (namespace alpha)"
    assert log[i + 2].startswith(f"run {running.id} cancelled after ")
    assert f"run {queued.id} started" not in log


def test_a_run_interrupted_by_a_restart_resumes_with_its_whole_trajectory(
    evolvent_home: Path,
) -> None:
    seed = long_seed(4)
    gate = Gate()
    with serve(evolvent_home, gate=gate) as s:
        run = s.a.create_run("toy:keys", seed=seed, max_steps=12)
        gate.open(2)
        wait_events(s.a, run.id, 2)
        stopping = threading.Thread(target=s.app.state.runs.shutdown)
        stopping.start()  # a graceful stop: the run ends after its current step
        gate.open()
        stopping.join(10)
        assert s.a.get_run(run.id).status == "interrupted"
    with serve(evolvent_home) as s:  # a new process on the same database
        assert s.a.get_run(run.id).status == "interrupted"
        assert s.a.resume_run(run.id).status in ("queued", "running")
        done = s.a.wait(run.id)
        assert done.status == "succeeded" and done.result is not None and done.result.success
        events = list(s.a.events(run.id))
        steps = [e.step for e in events if e.step]
        assert [e.id for e in events] == list(range(done.events + 1))
        assert [st.index for st in steps] == list(range(done.result.steps))
        fresh = s.a.wait(s.a.create_run("toy:keys", seed=seed, max_steps=12).id)
        assert [st.action for st in steps] == [
            e.step.action for e in s.a.events(fresh.id) if e.step
        ]
        with pytest.raises(ApiError) as err:
            s.a.resume_run(run.id)
        assert err.value.status_code == 409


def stop_gracefully(s: Served, gate: Gate) -> None:
    """The server's graceful stop: a running run ends after its current step, a queued one
    at once; both are interrupted."""
    stopping = threading.Thread(target=s.app.state.runs.shutdown)
    stopping.start()
    gate.open()
    stopping.join(10)


def test_a_graceful_stop_logs_the_runs_it_interrupts(
    evolvent_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.server.runs")
    with one_running_one_queued(evolvent_home) as (s, gate, running, queued):
        stop_gracefully(s, gate)
        assert {s.a.get_run(r.id).status for r in (running, queued)} == {"interrupted"}
    with serve(evolvent_home) as s:  # cancelled after a restart
        assert s.a.cancel_run(running.id).status == "cancelled"
    log = told(caplog)
    # It had played steps: not "cancelled before it started".
    assert f"run {running.id} cancelled after its interruption (namespace alpha)" in log
    assert f"run {queued.id} interrupted before it started (shutting down)" in log
    assert any(m.startswith(f"run {running.id} interrupted after ") for m in log)


def test_runs_left_running_by_a_dead_server_are_interrupted_at_startup(
    evolvent_home: Path,
) -> None:
    store = RunStore(quiet_settings(evolvent_home).checkpoint_path)
    store.insert(
        RunRow(
            id="run-dead",
            namespace="alpha",
            status="running",
            env="toy:keys",
            task=None,
            seed=1,
            max_steps=5,
            token_budget=1000,
            created=time.time(),
        )
    )
    store.close()
    with serve(evolvent_home) as s:
        assert s.a.get_run("run-dead").status == "interrupted"
        assert s.a.wait(s.a.resume_run("run-dead").id).status == "succeeded"


def test_a_run_that_errors_is_failed_with_its_reason(
    evolvent_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="agent.server.runs")

    def broken() -> LLMClient:  # a reason of several lines (pydantic's errors are)
        raise EvolventError("cannot reach the LLM endpoint\n  at http://127.0.0.1:9")

    with serve(evolvent_home, llm_factory=broken) as s:
        run = s.a.wait(s.a.create_run("toy:keys").id)
        assert run.status == "failed" and run.error is not None
        assert "cannot reach the LLM endpoint" in run.error
        end = list(s.a.events(run.id))[-1]
        assert isinstance(end, RunEvent) and end.end is not None and end.end.status == "failed"
    assert any(  # the log tells it in one line
        m.startswith(f"run {run.id} failed after ")
        and m.endswith(": cannot reach the LLM endpoint at http://127.0.0.1:9")
        for m in told(caplog)
    )


def test_keys_map_to_their_namespaces(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        assert {s.deps.namespace_for(k) for k in KEYS} == {"alpha", "beta"}
        assert s.deps.namespace_for("key-alph") is None


def test_the_client_on_a_server_that_is_not_there_or_a_blank_id(evolvent_home: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with EvolventClient(f"http://127.0.0.1:{port}", "key", timeout=2) as api:
        assert api.healthy() is False  # it raised httpx.ConnectError
        for call in (lambda: api.get_run("run-1"), api.readiness, lambda: list(api.events("r"))):
            with pytest.raises(ServerUnreachable, match=f"at http://127.0.0.1:{port}"):
                call()
    with serve(evolvent_home) as s:
        # A blank id named the collection: DELETE there was redirected, and taken as done.
        blanks: list[Callable[[], object]] = [
            lambda: s.a.delete_tool(""),
            lambda: s.a.delete_memory("  "),
            lambda: s.a.get_run(""),
        ]
        for blank in blanks:
            with pytest.raises(ValueError, match="an id or a name must not be blank"):
                blank()
