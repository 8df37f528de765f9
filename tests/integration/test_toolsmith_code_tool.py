"""A valid LLM-written code tool: validated in the real bwrap sandbox, then run as one
executor action in a real toy episode."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent import Agent
from agent.config import load_settings
from agent.llm.scripted import ScriptedLLM
from agent.nodes.executor import TOOL_PREFIX
from benchmarks.envs.toy import ToyEnv
from memory import HashingEmbedder, MemoryStore
from sandbox import Sandbox, SandboxUnavailable, get_sandbox
from toolsmith import CodeToolDraft, InProcessToolRegistry, Toolsmith, run_code_tool

pytestmark = pytest.mark.integration

DRAFT = CodeToolDraft(
    name="grab key and open chest",
    doc="Takes the key and opens the chest when they are here.",
    code=(
        "def run(observation, admissible):\n"
        "    wanted = ['take key', 'open chest']\n"
        "    return [a for a in wanted if a == 'open chest' or a in admissible]\n"
    ),
    tests=(
        "def test_both_here():\n"
        "    assert run('', ['take key', 'open chest']) == ['take key', 'open chest']\n"
        "\n"
        "def test_no_key_here():\n"
        "    assert run('', ['look']) == ['open chest']\n"
    ),
)


@pytest.fixture(scope="module")
def bwrap() -> Iterator[Sandbox]:
    try:
        box = get_sandbox("bwrap")
    except SandboxUnavailable as exc:
        pytest.skip(f"bwrap: {exc}")
    yield box
    box.close()


def validated(bwrap: Sandbox, llm: ScriptedLLM) -> Toolsmith:
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), sandbox=bwrap, llm=llm)
    tool = smith.propose_code(ToyEnv(3).reset().task, "> look\n  A hall with a key.")
    assert tool is not None and tool.status == "active", getattr(tool, "reason", None)
    assert tool.name == "grab_key_and_open_chest"
    assert tool.validation == "static checks passed; 2 test(s) passed in bwrap"
    return smith


def test_code_tool_actions_drive_a_toy_episode(bwrap: Sandbox) -> None:
    smith = validated(bwrap, ScriptedLLM([DRAFT]))
    tool = smith.registry.get("grab_key_and_open_chest")
    assert tool is not None
    env = ToyEnv(3)  # key and chest in the first room
    obs = env.reset()
    actions = run_code_tool(bwrap, tool, obs.text, obs.admissible)
    assert actions == ["take key", "open chest"]
    allowed = obs.admissible
    for act in actions:  # the executor's rule: one by one while admissible
        assert act in allowed
        result = env.step(act)
        allowed = result.admissible
    assert result.info.won


def test_code_tool_is_one_executor_action_of_an_agent_episode(
    bwrap: Sandbox, evolvent_home: Path
) -> None:
    def respond(kind: str, prompt: str, options: Sequence[str] | type[BaseModel] | None) -> str:
        if kind == "choose":
            assert isinstance(options, list)
            return str(next((o for o in options if o.startswith(TOOL_PREFIX)), options[0]))
        return "take the key, open the chest"

    llm = ScriptedLLM([DRAFT], responder=respond)
    smith = validated(bwrap, llm)
    store = MemoryStore.in_memory(HashingEmbedder())
    settings = load_settings(None, home=str(evolvent_home))
    with Agent(settings, llm=llm, memory=store, embedder=store.embedder, toolsmith=smith) as a:
        r = a.run(ToyEnv(3))
    assert r.success and r.steps == 1  # one executor step ...
    assert [s.action for s in r.trajectory] == ["take key", "open chest"]  # ... two actions
    assert {s.tool for s in r.trajectory} == {"grab_key_and_open_chest"}
    used = smith.registry.get("grab_key_and_open_chest")
    assert used is not None and (used.uses, used.successes, used.reward) == (1, 1, 2.0)
    assert smith.counter.invocations == 1
