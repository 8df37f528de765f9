from __future__ import annotations

from memory import HashingEmbedder
from toolsmith import InProcessToolRegistry, Toolsmith, ToolUse, mine_macros


def test_mining_needs_support_and_prefers_maximal() -> None:
    trajs = [
        ("e1", ["look", "take key", "go north", "open chest"]),
        ("e2", ["inventory", "take key", "go north", "open chest"]),
        ("e3", ["look", "go south"]),
    ]
    mined = mine_macros(trajs, min_support=2)
    steps = [m.steps for m in mined]
    assert ["take key", "go north", "open chest"] in steps
    # Contained in the longer macro with the same support: dropped.
    assert ["take key", "go north"] not in steps
    assert all(len(m.support) >= 2 for m in mined)


def test_loops_are_not_procedures() -> None:
    trajs = [("a", ["open fridge", "close fridge", "open fridge"])] * 1 + [
        ("b", ["open fridge", "close fridge", "open fridge"])
    ]
    assert all(len(set(m.steps)) == len(m.steps) for m in mine_macros(trajs))


def test_toolsmith_registers_offers_and_counts() -> None:
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()))
    assert smith.observe("e1", "toy:keys", ["take key", "open chest"], success=True) == []
    new = smith.observe("e2", "toy:keys", ["take key", "open chest"], success=True)
    assert [t.steps for t in new] == [["take key", "open chest"]]
    assert smith.observe("e3", "toy:keys", ["take key", "open chest"], success=False) == []
    offered = smith.offer("open the chest", ["take key", "look"])
    assert [t.name for t in offered] == [new[0].name]
    assert smith.offer("open the chest", ["look"]) == []
    smith.record(ToolUse(name=new[0].name, actions_run=["take key"], completed=False))
    tool = smith.registry.get(new[0].name)
    assert tool is not None and tool.uses == 1 and tool.failures == 1
    assert smith.counter.synthesized == 1 and smith.counter.invocations == 1
    assert smith.counter.ratio == 1.0


def test_disable_removes_from_retrieval() -> None:
    reg = InProcessToolRegistry(HashingEmbedder())
    smith = Toolsmith(reg)
    smith.observe("e1", "x", ["a b", "c d"], True)
    (tool,) = smith.observe("e2", "x", ["a b", "c d"], True)
    reg.set_status(tool.name, "disabled", reason="user")
    assert reg.retrieve("a b") == []
    assert reg.list_tools("disabled")[0].reason == "user"
