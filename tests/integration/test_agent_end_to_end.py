"""The real embedded llama.cpp server plays real TextWorld games through the real graph."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent import Agent, load_settings

pytestmark = pytest.mark.integration

EVOLVENT = [sys.executable, "-m", "agent.cli"]


def test_two_cooking_episodes_end_to_end(evolvent_home: Path, games_dir: Path) -> None:
    settings = load_settings(
        None, **{"home": str(evolvent_home), "games_dir": str(games_dir), "limits.max_steps": 4}
    )
    with Agent(settings) as agent:
        results = [agent.run("textworld:cooking", seed=s) for s in (1, 2)]
    for r in results:
        assert r.env == "textworld:cooking" and r.max_score > 0
        assert 1 <= r.steps <= 4
        assert r.failed_steps == 0  # constrained decoding: every answer is a valid action
        assert r.tokens > 0 and r.llm_s > 0 and r.env_s > 0
        assert r.wall_s >= r.llm_s + r.env_s - 1e-6
        assert r.memories_written
    # The second episode retrieved what the first one wrote.
    assert results[1].memories_used


def _checkpoints(db: Path, thread: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return int(
                c.execute(
                    "SELECT count(*) FROM checkpoints WHERE thread_id = ?", (thread,)
                ).fetchone()[0]
            )
    except sqlite3.OperationalError:
        return 0  # table not created yet


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped by init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _interruptible() -> None:
    """Runs in the child before exec: Ctrl-C's default action. A test run started in the
    background by a shell without job control inherits SIGINT ignored, and Python then
    never raises KeyboardInterrupt; these tests are about what Ctrl-C does."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop_within(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Wait for ``proc`` to exit; if it does not, fail with the stacks of its threads
    (``evolvent`` prints them on SIGUSR1) so that the wait can be diagnosed."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)
        time.sleep(2)
        proc.kill()
        _, stderr = proc.communicate()
        pytest.fail(f"still running {timeout:g} s after SIGINT; its threads:\n{stderr[-6000:]}")


def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(d.name))
    return kids


def test_killed_subprocess_resumes_and_finishes(evolvent_home: Path, games_dir: Path) -> None:
    env = {**os.environ, "EVOLVENT_HOME": str(evolvent_home), "EVOLVENT_GAMES_DIR": str(games_dir)}
    db = evolvent_home / "checkpoints.sqlite"
    thread = "kill-me"
    args = ["run", "--env", "textworld:cooking", "--seed", "1", "--max-steps", "6"]
    proc = subprocess.Popen(
        [*EVOLVENT, *args, "--thread-id", thread, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Planner + two executor steps checkpointed: kill it in the middle of the episode.
        deadline = time.monotonic() + 300
        while _checkpoints(db, thread) < 5:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "episode did not start in time"
            time.sleep(0.2)
        servers = _children(proc.pid)
        assert servers, "the embedded server should be a child of the CLI"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # The server dies with its parent (PR_SET_PDEATHSIG): nothing is left behind.
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in servers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in servers)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _checkpoints(db, thread)
    assert proc.stdout is not None and proc.stdout.read().strip() == ""  # no episode finished

    done = subprocess.run(
        [*EVOLVENT, "run", "--resume", thread, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.strip().splitlines()
    result = json.loads(line)
    for key in (
        "env",
        "seed",
        "success",
        "score",
        "max_score",
        "steps",
        "tokens",
        "wall_s",
        "llm_s",
        "env_s",
        "thread_id",
    ):
        assert key in result
    assert result["thread_id"] == thread and result["env"] == "textworld:cooking"
    # stderr is a pipe, where no bar is drawn: the episode is told in a line instead.
    assert "[1/1] episode 0 (seed 1): " in done.stderr
    assert result["seed"] == 1
    assert result["steps"] == 6 or result["stop_reason"] in ("won", "lost", "done")
    assert _checkpoints(db, thread) > before


def test_serve_llm_answers_and_stops_cleanly(evolvent_home: Path) -> None:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*EVOLVENT, "serve-llm", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/models"
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    assert b"gemma" in resp.read()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.5)
        servers = _children(proc.pid)
        proc.send_signal(signal.SIGINT)
        _stop_within(proc, 90)  # the server gets 5 s to stop; the rest is a slow machine's
        assert proc.returncode == 0
        assert not any(_alive(p) for p in servers)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_ctrl_c_leaves_a_consistent_resumable_run(evolvent_home: Path, games_dir: Path) -> None:
    env = {**os.environ, "EVOLVENT_HOME": str(evolvent_home), "EVOLVENT_GAMES_DIR": str(games_dir)}
    db = evolvent_home / "checkpoints.sqlite"
    proc = subprocess.Popen(
        [
            *EVOLVENT,
            "run",
            "--env",
            "textworld:cooking",
            "--seed",
            "2",
            "--max-steps",
            "20",
            "--thread-id",
            "ctrl-c",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )
    try:
        deadline = time.monotonic() + 300
        # Early in a 20-step episode, so that it cannot end before the signal arrives.
        while _checkpoints(db, "ctrl-c") < 3:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        # The step in flight (an LLM call on a loaded machine) finishes first.
        _, stderr = _stop_within(proc, 180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert "continue with `evolvent run --resume ctrl-c`" in stderr
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done = subprocess.run(
        [*EVOLVENT, "run", "--resume", "ctrl-c", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["thread_id"] == "ctrl-c"


def _serve_for_readme(home: Path) -> subprocess.Popen[str]:
    """The server the README's client example talks to (port 8080, key k-team-a)."""
    import urllib.request

    env = {
        **os.environ,
        "EVOLVENT_HOME": str(home),
        "EVOLVENT_API_KEYS": "k-team-a:team-a",
        "EVOLVENT_TEST_LLM": "toy",  # test-only scripted backbone: the example is about HTTP
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.server", "--port", "8080"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_interruptible,
    )
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            with urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=2):
                return proc
        except OSError:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)


def test_readme_python_examples_run(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    assert len(blocks) >= 4, "the README has Python examples"
    for i, code in enumerate(blocks):
        server = _serve_for_readme(tmp_path / f"srv{i}") if "EvolventClient(" in code else None
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code],
                capture_output=True,
                text=True,
                timeout=600,
                cwd=tmp_path,
            )
        finally:
            if server is not None:
                server.send_signal(signal.SIGINT)
                server.wait(timeout=60)
        assert proc.returncode == 0, f"README example {i}:\n{code}\n{proc.stderr[-3000:]}"
