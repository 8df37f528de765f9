"""CLI behaviour on user mistakes: one clear line, the valid choices, no stack trace."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from agent.cli import app

runner = CliRunner()


def test_help_documents_every_command() -> None:
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("run", "runs", "serve-llm", "envs", "bench", "serve", "memory", "tools"):
        assert f" {cmd} " in r.output
    r = runner.invoke(app, ["run", "--help"])
    for flag in (
        "--env",
        "--episodes",
        "--seed",
        "--max-steps",
        "--json",
        "--thread-id",
        "--resume",
    ):
        assert flag in r.output


def test_help_rewraps_docstring_paragraphs() -> None:
    """A docstring's line breaks are not kept in the help: a paragraph is re-wrapped to the
    terminal, and a command's summary in its group's list is its first sentence, whole."""
    wide = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}
    r = runner.invoke(app, ["bench", "--help"], env=wide)
    assert r.exit_code == 0
    assert "every episode learns as it ends. Otherwise each phase runs" in r.output
    r = runner.invoke(app, ["tools", "--help"], env=wide)
    assert "Delete tools with their version history (all the names given, or none)." in r.output
    assert "``" not in r.output


def test_serve_refuses_a_host_or_port_it_cannot_listen_on(
    evolvent_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVOLVENT_API_KEYS", "k:ns")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--port", str(port)], f"port {port} is in use on 127.0.0.1; pick another --port"),
            (["--host", " "], "--host must not be blank"),
            (["--host", "no-such-host.invalid"], "cannot resolve --host 'no-such-host.invalid'"),
            (["--host", "192.0.2.1"], "cannot listen on 192.0.2.1:8080"),  # not this machine's
        ]
        for args, message in cases:
            r = runner.invoke(app, ["serve", *args])
            assert r.exit_code == 2 and message in r.output, (args, r.output)
            assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not (evolvent_home / "memory").exists()  # refused before any store was opened


def test_unknown_env_lists_valid_ones(evolvent_home: Path) -> None:
    r = runner.invoke(app, ["run", "--env", "textworld:nope"])
    assert r.exit_code == 2
    assert "unknown environment 'textworld:nope'" in r.output
    assert "textworld:cooking" in r.output and "toy:keys" in r.output
    assert "Traceback" not in r.output


def test_bad_flag_lists_valid_options() -> None:
    r = runner.invoke(app, ["run", "--episodez", "3"])
    assert r.exit_code == 2
    assert "--episodez" in r.output and "--episodes" in r.output and "--max-steps" in r.output


def test_conflicting_flags(evolvent_home: Path) -> None:
    r = runner.invoke(app, ["run", "--resume", "x", "--env", "toy:keys"])
    assert r.exit_code == 2 and "--resume" in r.output


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--task", ""],
        ["run", "--task", "   "],
        ["run", "--env", ""],
        ["run", "--env", "toy:keys", "--thread-id", " "],
        ["run", "--resume", ""],  # once started a new cooking run
    ],
)
def test_blank_values_are_refused_not_defaulted(evolvent_home: Path, argv: list[str]) -> None:
    # A blank --task once played the default cooking game; the REST API refuses it too.
    r = runner.invoke(app, argv)
    flag = argv[-2]
    assert r.exit_code == 2 and f"{flag} must not be blank" in r.output, r.output


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--episodes", "1"], "--episodes"),
        (["--seed", "50", "--max-steps", "5"], "--seed/--max-steps"),
        (["--token-budget", "9", "--env", "toy:keys"], "--env/--token-budget"),
    ],
)
def test_resume_refuses_what_the_run_was_started_with(
    evolvent_home: Path, extra: list[str], named: str
) -> None:
    # They were ignored: the run resumed with its stored episodes, seeds and limits.
    r = runner.invoke(app, ["run", "--resume", "some-run", *extra])
    assert r.exit_code == 2, r.output
    assert f"don't combine it with {named}" in r.output
    assert not (evolvent_home / "checkpoints.sqlite").exists()  # nothing was started


def test_unreachable_endpoint_is_one_line(evolvent_home: Path) -> None:
    # Port 9 (discard) is closed on loopback: connection refused at once.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "run",
            "--env",
            "toy:keys",
            "--llm-url",
            "http://127.0.0.1:9/v1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **__import__("os").environ,
            "EVOLVENT_LLM__MAX_RETRIES": "1",
            "EVOLVENT_LLM__BACKOFF_S": "0.05",
        },
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "http://127.0.0.1:9/v1" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize("bad", ["--episodes=0", "--max-steps=-1"])
def test_out_of_range_values(bad: str) -> None:
    r = runner.invoke(app, ["run", bad])
    assert r.exit_code == 2


def test_envs_prints_one_line_per_id_or_family_in_a_pipe(evolvent_home: Path) -> None:
    """`evolvent envs | grep ...`: a family's long summary is not wrapped onto a second line."""
    from benchmarks.envs.registry import FAMILIES, is_env_id

    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "envs"], capture_output=True, text=True, check=True
    )
    lines = done.stdout.splitlines()
    summaries = [ln for ln in lines if ln.startswith("# ")]
    assert len(summaries) == sum(1 for f in FAMILIES.values() if f.summary)
    assert all(is_env_id(ln) for ln in lines if not ln.startswith("# "))


def test_a_path_the_system_refuses_is_one_line(tmp_path: Path) -> None:
    """EVOLVENT_HOME under /proc cannot be made: it was a FileNotFoundError traceback."""
    rows = tmp_path / "notes.jsonl"
    rows.write_text('{"id": "n1", "kind": "note", "key": "k", "text": "t"}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVOLVENT_")}
    done = subprocess.run(
        [sys.executable, "-m", "agent.cli", "memory", "import", str(rows)],
        capture_output=True,
        text=True,
        env={**env, "EVOLVENT_HOME": "/proc/nope"},
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: cannot use /proc/nope: No such file or directory")
    assert "Traceback" not in done.stderr


def test_a_benchmark_script_says_which_path_it_cannot_use() -> None:
    from benchmarks.scriptmain import run_script

    def refused(err: object) -> int:
        raise PermissionError(13, "Permission denied", "/root/x")

    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("benchmarks.scriptmain.stderr_console", lambda: Console(file=buf))
        assert run_script(refused) == 2
    assert buf.getvalue().startswith("error: cannot use /root/x: Permission denied")

    def broken(err: object) -> int:
        raise OSError("not about a path")  # a bug: its traceback is kept

    with pytest.raises(OSError, match="not about a path"):
        run_script(broken)
