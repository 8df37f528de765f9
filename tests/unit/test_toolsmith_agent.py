"""Tools through the agent graph: a parametrized macro is mined from two won episodes,
validated by replay, offered per slot binding and run as one executor step."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from kitchen_env import KitchenEnv
from pydantic import BaseModel

from agent import Agent
from agent.config import Settings, load_settings
from agent.llm.scripted import ScriptedLLM
from agent.nodes.executor import TOOL_PREFIX
from benchmarks.envs.base import Env
from memory import HashingEmbedder, MemoryStore
from toolsmith import InProcessToolRegistry, Tool, Toolsmith
from toolsmith.models import ToolStatus, ToolUse


def kitchen(env_id: str, seed: int) -> Env:
    return KitchenEnv(seed)


def cook(kind: str, prompt: str, options: Sequence[str] | type[BaseModel] | None) -> str:
    """Reads the wanted item from the first observation; prefers the tool bound to it."""
    if kind != "choose":
        return "take it, slice it, prepare the meal"
    assert isinstance(options, list)
    m = re.search(r"needs a sliced ([a-z ]+)\.", prompt)
    assert m is not None
    item = m.group(1)
    for want in (f"(X={item})", "prepare meal", f"slice {item}", f"take {item}"):
        hit = next((o for o in options if o.endswith(want)), None)
        if hit is not None:
            return str(hit)
    return "look"


def smith_with_take_slice_cook() -> Toolsmith:
    """A toolsmith whose registry holds one macro with a slot only its first step binds."""
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=kitchen)
    smith.registry.register(
        Tool(
            name="take_slice_cook",
            kind="macro",
            doc="take an item, slice it, prepare the meal",
            steps=["take {X}", "slice {Y}", "prepare meal"],
            slots=["X", "Y"],
        )
    )
    return smith


def test_parametrized_macro_runs_as_one_executor_step(evolvent_home: Path) -> None:
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=kitchen)
    store = MemoryStore.in_memory(HashingEmbedder())
    settings = load_settings(None, home=str(evolvent_home))
    llm = ScriptedLLM(responder=cook)
    with Agent(settings, llm=llm, memory=store, embedder=store.embedder, toolsmith=smith) as a:
        first, second = a.run(KitchenEnv(0)), a.run(KitchenEnv(1))
        assert first.success and second.success and not first.tools_written
        assert second.tools_written == ["take_x__slice_x__prepare_meal"]
        tool = smith.registry.get("take_x__slice_x__prepare_meal")
        assert tool is not None and tool.validation is not None
        assert tool.validation.startswith("replayed on ")

        third = a.run(KitchenEnv(2))
    offered = [c.options for c in llm.calls if c.kind == "choose"][-1]
    assert offered is not None
    assert f"{TOOL_PREFIX}take_x__slice_x__prepare_meal(X=yellow potato)" in offered
    assert third.success and third.steps == 1
    assert [s.action for s in third.trajectory] == [
        "take yellow potato",
        "slice yellow potato",
        "prepare meal",
    ]
    used = smith.registry.get("take_x__slice_x__prepare_meal")
    assert used is not None and (used.uses, used.successes, used.reward) == (1, 1, 3.0)
    assert used.feedback[0].kind == "worked"


def test_a_later_slot_is_filled_from_the_admissible_actions_when_it_runs(
    evolvent_home: Path,
) -> None:
    # Y is not in the first step: the executor must resolve "slice {Y}" against the
    # admissible actions after "take ..." ran (only the item just taken can be sliced).
    smith = smith_with_take_slice_cook()
    store = MemoryStore.in_memory(HashingEmbedder())
    settings = load_settings(None, home=str(evolvent_home))
    with Agent(
        settings,
        llm=ScriptedLLM(responder=cook),
        memory=store,
        embedder=store.embedder,
        toolsmith=smith,
    ) as a:
        r = a.run(KitchenEnv(1))
    assert r.success and r.steps == 1
    assert [s.action for s in r.trajectory] == ["take red apple", "slice red apple", "prepare meal"]


def never_tools(kind: str, prompt: str, options: Sequence[str] | type[BaseModel] | None) -> str:
    """A weak model: it never picks a tool (the first non-tool option, or 'look')."""
    if kind != "choose":
        return ""
    assert isinstance(options, list)
    return next((o for o in options if not o.startswith(TOOL_PREFIX)), "look")


def test_follow_tool_policy_runs_an_offered_tool_without_asking_the_llm(
    evolvent_home: Path,
) -> None:
    smith = smith_with_take_slice_cook()
    store = MemoryStore.in_memory(HashingEmbedder())
    settings = load_settings(None, home=str(evolvent_home))
    settings.limits.max_steps = 4
    settings.agent.tool_policy = "follow"
    llm = ScriptedLLM(responder=never_tools)
    with Agent(settings, llm=llm, memory=store, embedder=store.embedder, toolsmith=smith) as a:
        r = a.run(KitchenEnv(1))
    first = r.trajectory[0]
    assert first.source == "tool" and first.tool == "take_slice_cook"
    # Each instantiation runs at most once per episode: later tool steps bind other items.
    by_step = {s.index: s.tool_call for s in r.trajectory if s.tool_call}
    calls = list(by_step.values())
    assert len(calls) == len(set(calls)) >= 1
    tool = smith.registry.get("take_slice_cook")
    assert tool is not None and tool.uses == len(set(calls))


def test_follow_tool_policy_off_leaves_tools_to_the_llm(evolvent_home: Path) -> None:
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=kitchen)
    smith.registry.register(
        Tool(
            name="t",
            kind="macro",
            doc="take then slice",
            steps=["take {X}", "slice {X}"],
            slots=["X"],
        )
    )
    store = MemoryStore.in_memory(HashingEmbedder())
    settings = load_settings(None, home=str(evolvent_home))
    settings.limits.max_steps = 2
    llm = ScriptedLLM(responder=never_tools)
    with Agent(settings, llm=llm, memory=store, embedder=store.embedder, toolsmith=smith) as a:
        r = a.run(KitchenEnv(1))
    assert all(s.source == "llm" and s.tool is None for s in r.trajectory)
    tool = smith.registry.get("t")
    assert tool is not None and tool.uses == 0


def test_a_tool_that_keeps_failing_is_disabled_with_its_reason() -> None:
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=kitchen)
    smith.registry.register(Tool(name="bad", kind="macro", doc="d", steps=["a", "b"]))
    failed = ToolUse(name="bad", actions_run=["a"], completed=False, reward=0.0, planned=["a", "b"])
    for n in range(1, 7):
        tool = smith.record(failed)
        assert tool is not None
        assert tool.status == ("disabled" if n == 6 else "active")
    assert tool is not None and tool.reason is not None
    assert tool.reason.startswith("auto-disabled: utility 0.12")
    assert smith.offer("anything", ["a"]) == []


class DeletedWhileRecording(InProcessToolRegistry):
    """The user deletes the tool between the use's count and the automatic disable."""

    def set_status(self, name: str, status: ToolStatus, reason: str | None = None) -> Tool:
        self.delete(name)
        return super().set_status(name, status, reason)


def test_a_tool_deleted_while_its_use_is_recorded_is_not_an_error() -> None:
    smith = Toolsmith(DeletedWhileRecording(HashingEmbedder()), env_factory=kitchen)
    smith.registry.register(Tool(name="bad", kind="macro", doc="d", steps=["a", "b"]))
    failed = ToolUse(name="bad", actions_run=["a"], completed=False, reward=0.0, planned=["a", "b"])
    results = [smith.record(failed) for _ in range(6)]  # the sixth would disable it
    assert results[-1] is None and smith.registry.get("bad") is None
    assert smith.record(failed) is None  # and a use of a deleted tool counts nothing


def values_learned_on_kitchens(home: Path) -> tuple[MemoryStore, Settings, ScriptedLLM]:
    """A store whose step values learned from three won kitchen games (played under the
    follow action policy, with a toolsmith whose tools are not used afterwards); the
    settings, with ``tool_policy = follow`` and learning off (greedy), and the LLM."""
    store = MemoryStore.in_memory(HashingEmbedder())
    settings = load_settings(None, home=str(home))
    settings.memory.action_policy = "follow"
    llm = ScriptedLLM(responder=cook)
    learning = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=kitchen)
    with Agent(settings, llm=llm, memory=store, embedder=store.embedder, toolsmith=learning) as a:
        for seed in range(3):
            # Fixed thread ids: exploration is seeded by them, so what is learned is too.
            a.run(KitchenEnv(seed), thread_id=f"kitchen-{seed}")
    assert store.values.active()
    settings.agent.tool_policy = "follow"
    settings.agent.learn = False  # greedy: the top proposal at every step
    return store, settings, llm


def test_follow_policies_run_a_tool_that_starts_with_the_memorys_action(
    evolvent_home: Path,
) -> None:
    # The step-value function chooses the action; a validated macro whose first step is
    # that action runs in its place, and a macro starting elsewhere is never run.
    store, settings, llm = values_learned_on_kitchens(evolvent_home)
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=kitchen)
    for name, steps in (("look_then_take", ["look", "take {X}"]), ("t", ["take {X}", "slice {X}"])):
        smith.registry.register(Tool(name=name, kind="macro", doc="d", steps=steps, slots=["X"]))
    with Agent(settings, llm=llm, memory=store, embedder=store.embedder, toolsmith=smith) as a:
        r = a.run(KitchenEnv(3))
        alone = [s.action for s in r.trajectory]
        settings.agent.use_tools = False
        plain = [s.action for s in a.run(KitchenEnv(3)).trajectory]
    assert r.success and alone == plain  # the tool ran the moves the memory would have taken
    tool_steps = [s for s in r.trajectory if s.tool]
    assert {s.tool for s in tool_steps} == {"t"}
    assert (
        tool_steps[0].action == "take carrot"
        and tool_steps[0].tool_call == f"{TOOL_PREFIX}t(X=carrot)"
    )
    assert r.steps < len(plain)


def test_a_tool_that_loses_the_game_counts_as_failed() -> None:
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=kitchen)
    smith.registry.register(Tool(name="risky", kind="macro", doc="d", steps=["a", "b"]))
    ran = ToolUse(name="risky", actions_run=["a", "b"], completed=True, planned=["a", "b"])
    assert smith.record(ran.model_copy(update={"reward": 1.0})) is not None
    tool = smith.record(ran.model_copy(update={"lost": True}))
    assert tool is not None and (tool.uses, tool.successes, tool.failures) == (2, 1, 1)
    assert tool.feedback[-1].kind == "lost"


def test_a_macro_stops_where_the_learned_values_disagree(evolvent_home: Path) -> None:
    store, settings, llm = values_learned_on_kitchens(evolvent_home)
    runs = {}
    for k in (1, 0):
        smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=kitchen)
        detour = Tool(name="d", kind="macro", doc="d", steps=["take {X}", "look"], slots=["X"])
        smith.registry.register(detour)
        settings.agent.tool_guard_k = k
        with Agent(settings, llm=llm, memory=store, embedder=store.embedder, toolsmith=smith) as a:
            runs[k] = [s.action for s in a.run(KitchenEnv(3)).trajectory]
        used = smith.registry.get("d")
        assert used is not None and used.uses == 1
        if k == 1:
            assert used.feedback[0].kind == "stopped_early"
            assert "the learned values ranked 'look' below their best" in used.feedback[0].detail
    assert runs[1] == ["take carrot", "slice carrot", "prepare meal"]  # the detour was cut
    assert runs[0][:2] == ["take carrot", "look"]  # unguarded, the macro runs to its end
