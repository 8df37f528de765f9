"""LLM-written code tools: static checks, tests in the sandbox, running one, junk rejected."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from agent.llm.scripted import ScriptedLLM
from memory import HashingEmbedder
from sandbox import FakeSandbox, Sandbox, SandboxUnavailable, get_sandbox
from sandbox.base import RunResult
from sandbox.fake import FakeCall
from toolsmith import (
    CodeToolDraft,
    InProcessToolRegistry,
    Tool,
    Toolsmith,
    ToolsmithConfig,
    call_code_tool,
    propose_code_tool,
    run_code_tool,
    static_problems,
    trajectory_summary,
    validate_code_tool,
)

GOOD_CODE = """
import re

def run(observation, admissible):
    wanted = re.findall(r"needs a (\\w+)", observation)
    return [a for a in admissible if a.startswith("take ") and any(w in a for w in wanted)]
"""
GOOD_TESTS = """
def test_takes_what_is_needed():
    assert run("It needs a key.", ["take key", "take lamp", "look"]) == ["take key"]

def test_nothing_needed():
    assert run("", ["take key"]) == []
"""


def code_tool(code: str = GOOD_CODE, tests: str = GOOD_TESTS, name: str = "take_needed") -> Tool:
    return Tool(
        name=name, kind="code", doc="takes what the text says is needed", code=code, tests=tests
    )


@pytest.fixture(scope="module")
def bwrap() -> Iterator[Sandbox]:
    try:
        box = get_sandbox("bwrap")
    except SandboxUnavailable as exc:
        pytest.skip(f"bwrap: {exc}")
    yield box
    box.close()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import socket\ndef run(o, a):\n    return []", "imports socket"),
        ("import subprocess\ndef run(o, a):\n    return []", "imports subprocess"),
        ("from urllib import request\ndef run(o, a):\n    return []", "imports from urllib"),
        ("def run(o, a):\n    return eval(o)", "uses 'eval'"),
        ("def run(o, a):\n    exec(o)\n    return []", "uses 'exec'"),
        ("def run(o, a):\n    return [open('/etc/passwd').read()]", "uses 'open'"),
        (
            "def run(o, a):\n    return ().__class__.__subclasses__()",
            "private attribute '__class__'",
        ),
        ("def run(o, a):\n    return __builtins__", "dunder name '__builtins__'"),
        ("def run(o, a):\n    return __import__('os')", "uses '__import__'"),
        ("def run(o, a):\n    return ['{0.__globals__}'.format(run)]", "dunder name"),
        ("def run(o, a):\n    return getattr(o, 'upper')()", "uses 'getattr'"),
        ("def go(o, a):\n    return []", "defines no top-level function run"),
        ("def run(o):\n    return []", "run must accept"),
        ("def run(o, a) return", "does not parse"),
        ("", "code is empty"),
    ],
)
def test_static_check_rejects(code: str, expected: str) -> None:
    problems = static_problems(code)
    assert any(expected in p for p in problems), problems


def test_static_check_accepts_plain_code_and_checks_tests() -> None:
    assert static_problems(GOOD_CODE) == []
    assert static_problems(GOOD_TESTS, tests=True) == []
    assert static_problems("from tool import run\n" + GOOD_TESTS, tests=True) == []
    assert "tests contain no assert" in static_problems(
        "def test_a():\n    run('', [])", tests=True
    )
    assert "tests define no top-level test_ function" in static_problems("x = 1", tests=True)
    assert any("imports tool" in p for p in static_problems("import tool\n" + GOOD_CODE))


def answer(marker_payload: dict[str, object]) -> Callable[[FakeCall], RunResult]:
    """A FakeSandbox reply that speaks the harness protocol (the marker is argv[2])."""

    def reply(call: FakeCall) -> RunResult:
        return FakeSandbox.result(
            stdout="noise\n" + call.argv[2] + json.dumps(marker_payload) + "\n"
        )

    return reply


def test_validation_with_a_scripted_sandbox() -> None:
    ok = FakeSandbox([answer({"results": [["test_a", None], ["test_b", None]]})])
    verdict = validate_code_tool(code_tool(), ok)
    assert verdict.ok and "2 test(s) passed in fake" in verdict.note
    (call,) = ok.calls
    assert call.argv[:2] == ["python3", "harness.py"]
    assert set(call.files) == {"tool.py", "tests.py", "harness.py"}

    failing = FakeSandbox([answer({"results": [["test_a", "AssertionError: "]]})])
    verdict = validate_code_tool(code_tool(), failing)
    assert not verdict.ok and "1 test(s) failed in the sandbox, e.g. test_a" in verdict.note

    slow = FakeSandbox(
        [RunResult(exit_code=-9, stdout="", stderr="", timed_out=True, wall_s=1.0, backend="fake")]
    )
    verdict = validate_code_tool(code_tool(), slow, timeout=1.0)
    assert not verdict.ok and "timed out after 1s" in verdict.note

    # A fake marker printed by the tool does not count: the harness's marker is random.
    forged = FakeSandbox([FakeSandbox.result(stdout='@@evolvent-0@@{"results": [["t", null]]}\n')])
    assert "no result (exit code 0)" in validate_code_tool(code_tool(), forged).note
    # Static problems are found before anything runs.
    unused = FakeSandbox()
    assert "static check" in validate_code_tool(code_tool(code="import os"), unused).note
    assert unused.calls == []


def test_code_tool_call_with_a_scripted_sandbox() -> None:
    box = FakeSandbox([answer({"actions": ["take key"]}), answer({"error": "KeyError: 'x'"})])
    assert run_code_tool(box, code_tool(), "obs", ["take key"]) == ["take key"]
    sent = json.loads(box.calls[0].files["input.json"])
    assert sent == {"observation": "obs", "admissible": ["take key"]}
    res = call_code_tool(box, code_tool(), "obs", [])
    assert res.actions == [] and res.error == "KeyError: 'x'"
    macro = Tool(name="m", kind="macro", doc="d", steps=["a"])
    assert "not a code tool" in (call_code_tool(box, macro, "", []).error or "")


def test_real_sandbox_runs_tests_and_the_tool(bwrap: Sandbox) -> None:
    assert validate_code_tool(code_tool(), bwrap).ok
    wrong = GOOD_TESTS.replace("== []", "== ['take key']")
    verdict = validate_code_tool(code_tool(tests=wrong), bwrap)
    assert not verdict.ok and "test_nothing_needed: AssertionError" in verdict.note
    assert run_code_tool(bwrap, code_tool(), "It needs a lamp.", ["take lamp", "look"]) == [
        "take lamp"
    ]
    bad = code_tool(code="def run(o, a):\n    return 'look'")
    assert "returned str, not a list of strings" in (call_code_tool(bwrap, bad, "", []).error or "")
    loop = code_tool(code="def run(o, a):\n    while True:\n        pass")
    res = call_code_tool(bwrap, loop, "", [], timeout=1.0)
    assert res.actions == [] and res.error == "timed out after 1s"


def test_junk_from_the_llm_is_registered_as_rejected_with_reason(bwrap: Sandbox) -> None:
    junk = CodeToolDraft(name="The Tool!!", doc="tool tool tool", code="run run run", tests="test")
    llm = ScriptedLLM([junk])
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), sandbox=bwrap, llm=llm)
    tool = smith.propose_code("Open the chest.", "> look\n  A room.")
    assert tool is not None and tool.name == "the_tool" and tool.status == "rejected"
    assert tool.reason is not None and tool.reason.startswith("static check: code does not parse")
    assert smith.registry.list_tools("rejected")[0].reason == tool.reason
    assert smith.counter.rejected == 1 and smith.counter.synthesized == 0
    assert "def run(observation: str, admissible: list[str]) -> list[str]" in llm.prompts[0]
    # An answer that does not even fill the form: nothing to keep.
    assert propose_code_tool(ScriptedLLM(["not json"] * 4), "t", "s") is None


def test_good_code_tool_is_validated_and_offered(bwrap: Sandbox) -> None:
    draft = CodeToolDraft(
        name="take_needed", doc="takes what is needed", code=GOOD_CODE, tests=GOOD_TESTS
    )
    cfg = ToolsmithConfig(code_every=2)
    smith = Toolsmith(
        InProcessToolRegistry(HashingEmbedder()),
        cfg,
        sandbox=bwrap,
        llm=ScriptedLLM([draft, draft]),
    )
    assert smith.after_failure("find what is needed", "s") is None  # 1st failure: not due
    tool = smith.after_failure("find what is needed", "s")
    assert tool is not None and tool.status == "active", getattr(tool, "reason", None)
    assert tool.validation == "static checks passed; 2 test(s) passed in bwrap"
    assert [t.name for t in smith.offer("take what is needed", ["look"])] == ["take_needed"]
    # Same name again: a new tool with a numbered name, not a new version.
    assert smith.submit(code_tool()).name == "take_needed_2"
    res = smith.run_code(tool, "It needs a key.", ["take key"])
    assert res.actions == ["take key"] and res.error is None


def test_prompt_parts() -> None:
    from toolsmith.codegen import tool_name

    assert tool_name("Take Everything!") == "take_everything"
    assert tool_name("42 ways") == "code_42_ways" and tool_name("???") == "code"
    summary = trajectory_summary(
        [("look", "A room.\n\nExits:   north."), ("go north", "x" * 150)], keep=2, outcome="lost"
    )
    assert summary.splitlines() == [
        "> look",
        "  A room. Exits: north.",
        "> go north",
        "  " + "x" * 100 + "…",
        "Outcome: lost",
    ]
    assert trajectory_summary([]) == "(no actions)"
