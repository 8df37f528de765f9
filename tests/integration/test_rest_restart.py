"""The REST server as a real process: SIGKILL or SIGTERM it mid-run, restart it, resume the run.

The server runs ``python -m agent.server`` with the test-only scripted LLM
(``EVOLVENT_TEST_LLM=toy-slow:SECONDS``: each action takes that long) and a real embedded
memory store and checkpoint database in a temporary home.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from agent.server.client import ApiError, EvolventClient, RunEvent
from benchmarks.envs.toy import ToyEnv

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KEY = "restart-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def server(
    home: Path, log: Path, **settings: str
) -> Iterator[tuple[subprocess.Popen[bytes], EvolventClient]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVOLVENT_")}
    env |= {
        "EVOLVENT_HOME": str(home),
        "EVOLVENT_API_KEYS": f"{KEY}:alpha",
        "EVOLVENT_TEST_LLM": "toy-slow:0.3",
        "EVOLVENT_MEMORY__NOTEBOOK_BATCH": "0",
        "EVOLVENT_MEMORY__DISTILL_EVERY": "0",
        **settings,
    }
    cmd = [sys.executable, "-m", "agent.server", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    api = EvolventClient(f"http://127.0.0.1:{port}", KEY, timeout=10)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
            try:
                if api.healthy():
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"the server never answered:\n{log.read_text()}"
            time.sleep(0.2)
        yield proc, api
    finally:
        api.close()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_sigkill_mid_run_then_restart_and_resume(tmp_path: Path) -> None:
    seed = next(s for s in range(1000) if len(ToyEnv(s).walkthrough) >= 5)
    home, log = tmp_path / "home", tmp_path / "server.log"
    with server(home, log) as (proc, api):
        run = api.create_run("toy:keys", seed=seed, max_steps=15)
        seen: list[RunEvent] = []
        for event in api.events(run.id):  # live, as the steps happen
            seen.append(event)
            if len(seen) == 2:
                break
        assert [e.id for e in seen] == [0, 1] and all(e.event == "step" for e in seen)
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown handler runs
        proc.wait(10)

    with server(home, log) as (_, api):
        before = api.get_run(run.id)
        assert before.status == "interrupted" and before.events >= 2
        assert api.resume_run(run.id).status in ("queued", "running")
        done = api.wait(run.id, timeout=120)
        assert done.status == "succeeded", done.error
        assert done.result is not None and done.result.success
        events = list(api.events(run.id))
        steps = [e.step for e in events if e.step is not None]
        assert [e.id for e in events] == list(range(len(steps) + 1))
        assert events[-1].end is not None and events[-1].end.status == "succeeded"
        assert [s.index for s in steps] == list(range(done.result.steps)) and steps
        assert [e.data for e in seen] == [e.data for e in events[:2]]
        # What the resumed episode learned is in the (reopened) embedded memory store.
        assert done.result.memories_written
        assert api.memory(done.result.memories_written[0]).provenance.episode_id == run.id
        # The whole trajectory: the same as a run that nobody interrupted.
        fresh = api.wait(api.create_run("toy:keys", seed=seed, max_steps=15).id, timeout=120)
        assert [s.action for s in steps] == [
            e.step.action for e in api.events(fresh.id) if e.step is not None
        ]
        assert 'evolvent_runs_started_total{kind="resume"} 1.0' in api.metrics()
    # The server's log (uvicorn's handler and format) tells the run's life, both processes'.
    told = [ln for ln in log.read_text().splitlines() if f"run {run.id}" in ln]
    assert told[:2] == [
        f"INFO:     run {run.id} queued (namespace alpha): toy:keys seed {seed}, at most 15 steps",
        f"INFO:     run {run.id} started",
    ]
    assert told[2:4] == [
        f"INFO:     run {run.id} queued to resume (namespace alpha)",
        f"INFO:     run {run.id} started (resumed)",
    ]
    assert told[4].startswith(f"INFO:     run {run.id} succeeded after ")
    assert told[4].endswith(f": won, score 2/2 in {done.result.steps} steps")
    # The restart's notice is made as the app is built: on the same handler, in that format.
    restarts = "1 run(s) were interrupted by the last shutdown; resume them"
    assert f"WARNING:  {restarts}" in log.read_text().splitlines()


def test_sigterm_ends_an_open_event_stream_cleanly(tmp_path: Path) -> None:
    """uvicorn waits for open connections as it stops: the event stream ends (it once was
    cut off, an ERROR in the log and a broken transfer for the client) and the client is
    told to read on later; the run is interrupted, and its events read on after a restart."""
    seed = next(s for s in range(1000) if len(ToyEnv(s).walkthrough) >= 5)
    home, log = tmp_path / "home", tmp_path / "server.log"
    with server(home, log) as (proc, api):
        run = api.create_run("toy:keys", seed=seed, max_steps=15)
        seen: list[RunEvent] = []
        with pytest.raises(ApiError) as closed:
            for event in api.events(run.id):
                seen.append(event)
                if len(seen) == 2:
                    proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises it once stopped
    assert closed.value.status_code == 503
    last = seen[-1].id
    assert last is not None
    assert f"read on with events({run.id!r}, last_event_id={last}) once it is back" in str(
        closed.value
    )
    text = log.read_text()
    assert "ERROR" not in text and "Traceback" not in text, text
    with server(home, log) as (_, api):
        assert api.get_run(run.id).status == "interrupted"
        api.cancel_run(run.id)
        later = list(api.events(run.id, last_event_id=last))
        assert later and later[-1].event == "end"
        assert all(e.id is not None and e.id > last for e in later)


def test_a_body_refused_before_routing_is_counted_under_its_route(tmp_path: Path) -> None:
    """uvicorn answers a declared oversize body before the router runs: /metrics counted
    it as "unmatched" (an in-process test client routes it first and cannot show this)."""
    limit = {"EVOLVENT_SERVER__MAX_BODY_BYTES": "2048"}
    with server(tmp_path / "home", tmp_path / "server.log", **limit) as (_, api):
        big = {"task": "x" * 5000}
        r = api.http.post("/v1/runs", json=big, headers=api.headers)
        assert r.status_code == 413
        assert 'route="/v1/runs",status="413"' in api.metrics()
