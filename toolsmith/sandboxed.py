"""Code tools run in the sandbox: their tests at validation, ``run()`` when the agent uses one.

The tool's source and a small harness are written into the sandbox's work dir; the harness
execs the tool, calls it (or its tests) and prints one JSON line after a random marker, so
whatever the tool itself prints cannot pass for the result. Input goes in through a file,
output comes back on stdout; any failure is a result with an ``error``, never an exception.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from sandbox.base import RunResult, Sandbox
from toolsmith.models import Tool
from toolsmith.static import static_problems

MAX_ACTIONS = 20
MAX_ACTION_CHARS = 200

_PRELUDE = """
import io, json, sys
MARKER = sys.argv[1]
REAL = sys.stdout

def emit(obj):
    sys.stdout = REAL
    REAL.write(MARKER + json.dumps(obj) + "\\n")
    REAL.flush()

def load(path, ns):
    with open(path) as fh:
        src = fh.read()
    exec(compile(src, path, "exec"), ns)
"""

RUN_HARNESS = (
    _PRELUDE
    + """
try:
    with open("input.json") as fh:
        data = json.load(fh)
    sys.stdout = io.StringIO()
    ns = {"__name__": "evolvent_tool"}
    load("tool.py", ns)
    out = ns["run"](data["observation"], list(data["admissible"]))
    if not isinstance(out, (list, tuple)) or not all(isinstance(a, str) for a in out):
        emit({"error": "run() returned %s, not a list of strings" % type(out).__name__})
    else:
        emit({"actions": list(out)})
except BaseException as e:
    emit({"error": ("%s: %s" % (type(e).__name__, e))[:300]})
"""
)

TEST_HARNESS = (
    _PRELUDE
    + """
try:
    sys.stdout = io.StringIO()
    ns = {"__name__": "evolvent_tool"}
    load("tool.py", ns)
    load("tests.py", ns)
except BaseException as e:
    emit({"error": ("loading: %s: %s" % (type(e).__name__, e))[:300]})
    raise SystemExit(0)
results = []
for name in [n for n in list(ns) if n.startswith("test_") and callable(ns[n])]:
    try:
        sys.stdout = io.StringIO()
        ns[name]()
        results.append([name, None])
    except BaseException as e:
        results.append([name, ("%s: %s" % (type(e).__name__, e))[:300]])
emit({"results": results})
"""
)


class CodeToolResult(BaseModel):
    """One call of a code tool."""

    actions: list[str] = Field(default_factory=list)
    error: str | None = None
    wall_s: float = 0.0


class TestReport(BaseModel):
    """The outcome of a code tool's tests."""

    passed: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
    """Test name -> the exception it raised."""
    error: str | None = None
    """The tests could not run (syntax error, timeout, sandbox problem)."""

    @property
    def ok(self) -> bool:
        return self.error is None and not self.failed and bool(self.passed)


def _exchange(
    sandbox: Sandbox, harness: str, files: dict[str, str], timeout: float
) -> tuple[dict[str, Any] | None, str | None, RunResult | None]:
    """Run a harness; (its JSON answer, or None with the reason, and the raw result)."""
    marker = f"@@evolvent-{secrets.token_hex(8)}@@"
    try:
        res = sandbox.run(
            ["python3", "harness.py", marker],
            timeout=timeout,
            files={**files, "harness.py": harness},
        )
    except Exception as e:  # a broken sandbox must not crash the agent's step
        return None, f"sandbox failed: {type(e).__name__}: {e}"[:300], None
    if res.timed_out:
        return None, f"timed out after {timeout:g}s", res
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith(marker)]
    if not lines:
        why = res.killed_reason or f"exit code {res.exit_code}"
        tail = res.stderr.strip().splitlines()[-1:] if res.stderr.strip() else []
        return None, f"no result ({why}){': ' + tail[0][:200] if tail else ''}", res
    try:
        answer = json.loads(lines[-1][len(marker) :])
    except json.JSONDecodeError:
        return None, "unreadable result", res
    return (answer, None, res) if isinstance(answer, dict) else (None, "unreadable result", res)


def run_tests(sandbox: Sandbox, code: str, tests: str, timeout: float = 10.0) -> TestReport:
    """Run every ``test_*`` function of ``tests`` against ``code`` in the sandbox."""
    answer, error, _ = _exchange(
        sandbox, TEST_HARNESS, {"tool.py": code, "tests.py": tests}, timeout
    )
    if answer is None:
        return TestReport(error=error)
    if "error" in answer:
        return TestReport(error=str(answer["error"]))
    report = TestReport()
    for row in answer.get("results", []):
        if not (isinstance(row, list) and len(row) == 2 and isinstance(row[0], str)):
            return TestReport(error="unreadable result")
        if row[1] is None:
            report.passed.append(row[0])
        else:
            report.failed[row[0]] = str(row[1])
    return report


def call_code_tool(
    sandbox: Sandbox,
    tool: Tool,
    observation: str,
    admissible: Sequence[str],
    timeout: float = 5.0,
) -> CodeToolResult:
    """Run a code tool's ``run(observation, admissible)`` in the sandbox; any failure (the
    static checks, an exception, a timeout, output that is not a list of strings) is a result
    with an ``error`` and no actions."""
    if tool.kind != "code" or not tool.code:
        return CodeToolResult(error=f"{tool.name} is not a code tool")
    problems = static_problems(tool.code)  # checked at registration; the file may be edited
    if problems:
        return CodeToolResult(error="static check: " + "; ".join(problems[:3]))
    payload = json.dumps({"observation": observation, "admissible": list(admissible)})
    answer, error, res = _exchange(
        sandbox, RUN_HARNESS, {"tool.py": tool.code, "input.json": payload}, timeout
    )
    wall = res.wall_s if res is not None else 0.0
    if answer is None or "error" in answer:
        why = error if answer is None else str(answer["error"])
        return CodeToolResult(error=why, wall_s=wall)
    actions = [str(a)[:MAX_ACTION_CHARS] for a in answer.get("actions", [])][:MAX_ACTIONS]
    return CodeToolResult(actions=actions, wall_s=wall)


def run_code_tool(
    sandbox: Sandbox,
    tool: Tool,
    observation: str,
    admissible: Sequence[str],
    timeout: float = 5.0,
) -> list[str]:
    """The actions a code tool returns ([] on any failure; ``call_code_tool`` says why)."""
    return call_code_tool(sandbox, tool, observation, admissible, timeout).actions
