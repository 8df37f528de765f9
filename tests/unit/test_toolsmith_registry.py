"""One contract every tool registry meets (in-process and SQLite), plus SQLite persistence."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from memory import HashingEmbedder
from toolsmith import (
    InProcessToolRegistry,
    SqliteToolRegistry,
    Tool,
    ToolFeedback,
    ToolProvenance,
    ToolRegistry,
    ToolRegistryError,
    ToolUse,
    Trajectory,
)

BACKENDS = ["inprocess", "sqlite"]


@pytest.fixture(params=BACKENDS)
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ToolRegistry]:
    registry: ToolRegistry
    if request.param == "inprocess":
        registry = InProcessToolRegistry(HashingEmbedder())
    else:
        registry = SqliteToolRegistry(tmp_path / "tools.sqlite", HashingEmbedder(), "ns1")
    yield registry
    registry.close()


def macro(name: str, doc: str, *steps: str) -> Tool:
    return Tool(name=name, kind="macro", doc=doc, steps=list(steps))


def test_register_get_list(reg: ToolRegistry) -> None:
    t = reg.register(macro("open_chest", "open the chest with the key", "take key", "open chest"))
    assert t.version == 1
    got = reg.get("open_chest")
    assert got == t and got is not t
    assert reg.get("nope") is None
    assert [x.name for x in reg.list_tools()] == ["open_chest"]
    assert reg.list_tools("rejected") == []


def test_an_unknown_status_is_refused_before_anything_is_stored(reg: ToolRegistry) -> None:
    """A stored "bogus" status made every later read of the registry (and every run) fail."""
    reg.register(macro("open_chest", "open the chest", "take key", "open chest"))
    with pytest.raises(ValueError, match="unknown tool status 'bogus'; valid: active, disabled"):
        reg.set_status("open_chest", "bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown tool status 'bogus'"):
        reg.list_tools("bogus")  # type: ignore[arg-type]
    assert [t.status for t in reg.versions("open_chest")] == ["active"]
    with pytest.raises(TypeError, match="version must be an int, not str"):
        reg.rollback("open_chest", "1")  # type: ignore[arg-type]


def test_versions_keep_every_register_and_rollback(reg: ToolRegistry) -> None:
    reg.register(macro("m", "first doc", "a b", "c d"))
    v2 = reg.register(macro("m", "second doc", "a b", "e f"))
    assert v2.version == 2
    history = reg.versions("m")
    assert [(t.version, t.doc) for t in history] == [(1, "first doc"), (2, "second doc")]
    back = reg.rollback("m", 1)
    assert (back.version, back.doc, back.steps) == (3, "first doc", ["a b", "c d"])
    assert back.change == "rolled back to v1"
    assert [t.version for t in reg.versions("m")] == [1, 2, 3]
    assert reg.rollback("m", 3).version == 3  # already current: no new version
    with pytest.raises(KeyError):
        reg.rollback("m", 9)
    with pytest.raises(KeyError):
        reg.rollback("nope", 1)
    assert reg.versions("nope") == []


def test_revise_keeps_usage_stats(reg: ToolRegistry) -> None:
    reg.register(macro("m", "doc", "a b", "c d"))
    reg.record_use(ToolUse(name="m", actions_run=["a b", "c d"], completed=True, reward=1.0))
    new = reg.revise("m", "doc refined", doc="better doc")
    assert (new.version, new.doc, new.uses, new.successes, new.reward) == (
        2,
        "better doc",
        1,
        1,
        1.0,
    )
    assert reg.versions("m")[0].doc == "doc"


def test_rejected_kept_with_reason_and_not_retrieved(reg: ToolRegistry) -> None:
    bad = macro("bad", "open the chest", "x y", "z w").model_copy(
        update={"status": "rejected", "reason": "replay: score 0 < original 2"}
    )
    reg.register(bad)
    reg.register(macro("good", "open the chest with the key", "take key", "open chest"))
    (rejected,) = reg.list_tools("rejected")
    assert rejected.name == "bad" and rejected.reason == "replay: score 0 < original 2"
    assert [t.name for t in reg.retrieve("open the chest", k=5)] == ["good"]


def test_usage_counts_success_rate_utility_feedback(reg: ToolRegistry) -> None:
    reg.register(macro("m", "doc", "a b", "c d"))
    fb = ToolFeedback(kind="stopped_early", detail="stopped after 1/2 steps")
    reg.record_use(ToolUse(name="m", actions_run=["a b"], completed=False), fb)
    t = reg.record_use(ToolUse(name="m", actions_run=["a b", "c d"], completed=True, reward=2))
    assert t is not None
    assert (t.uses, t.successes, t.failures, t.reward) == (2, 1, 1, 2.0)
    assert t.success_rate == 0.5 and t.utility == pytest.approx(0.5)
    assert [f.detail for f in t.feedback] == ["stopped after 1/2 steps"]
    assert t.pending_failures == 1
    assert reg.record_use(ToolUse(name="ghost", actions_run=[], completed=False)) is None


def test_retrieval_by_doc_similarity_and_status(reg: ToolRegistry) -> None:
    reg.register(macro("chest", "take the key and open the locked chest", "take key", "o c"))
    reg.register(macro("cook", "slice and cook the carrot for the meal", "slice c", "cook c"))
    assert [t.name for t in reg.retrieve("cook a carrot meal", k=1)] == ["cook"]
    assert reg.retrieve("open the locked chest", k=2)[0].name == "chest"
    reg.set_status("cook", "disabled", "user")
    assert [t.name for t in reg.retrieve("cook a carrot meal", k=2)] == ["chest"]
    assert reg.get("cook") is not None and reg.list_tools("disabled")[0].reason == "user"
    # A doc change re-embeds: retrieval follows the new doc.
    reg.set_status("cook", "active")
    reg.revise("cook", "doc", doc="unlock the chest quickly")
    assert reg.retrieve("unlock quickly", k=1)[0].name == "cook"
    assert reg.retrieve("x", k=0) == []
    with pytest.raises(KeyError):
        reg.set_status("nope", "disabled")


def test_trajectories_replace_by_episode_and_keep_newest(reg: ToolRegistry) -> None:
    for i in range(4):
        reg.add_trajectory(Trajectory(episode_id=f"e{i}", env_id="toy", actions=["a"]), keep=3)
    reg.add_trajectory(Trajectory(episode_id="e3", env_id="toy", actions=["b"], seed=1), keep=3)
    got = reg.trajectories("toy")
    assert [t.episode_id for t in got] == ["e1", "e2", "e3"]
    assert got[-1].actions == ["b"] and got[-1].seed == 1
    assert reg.trajectories("other") == []
    reg.add_trajectory(Trajectory(episode_id="w1", env_id="tw", actions=["c"], created_at=1e10))
    assert [t.episode_id for t in reg.trajectories()] == ["e1", "e2", "e3", "w1"]


def test_delete_forgets_a_tool_and_its_history(reg: ToolRegistry) -> None:
    reg.register(macro("m", "first doc", "a b", "c d"))
    reg.register(macro("m", "second doc", "a b", "e f"))
    reg.register(macro("keep", "another tool", "x y", "z w"))
    reg.add_trajectory(Trajectory(episode_id="e1", env_id="toy", actions=["a b", "c d"]))
    assert reg.delete("m") == 2
    assert reg.get("m") is None and reg.versions("m") == []
    assert [t.name for t in reg.list_tools()] == ["keep"]
    assert [t.name for t in reg.retrieve("second doc", k=5)] == ["keep"]
    assert reg.delete("m") == 0 and reg.delete("ghost") == 0
    assert [t.episode_id for t in reg.trajectories("toy")] == ["e1"]  # mined from: kept
    again = reg.register(macro("m", "mined again", "a b", "c d"))
    assert again.version == 1 and [t.version for t in reg.versions("m")] == [1]


def test_mined_from_lists_the_tools_an_episode_gave(reg: ToolRegistry) -> None:
    for name, episodes in (("a", ["e1", "e2"]), ("b", ["e2"]), ("c", [])):
        tool = macro(name, f"doc {name}", "x y", "z w")
        tool.provenance = ToolProvenance(episode_ids=episodes)
        reg.register(tool)
    reg.set_status("b", "disabled", "by hand")
    assert [t.name for t in reg.mined_from("e2")] == ["a", "b"]
    assert [t.name for t in reg.mined_from("e2", "active")] == ["a"]
    assert [t.name for t in reg.mined_from("e1")] == ["a"]
    assert reg.mined_from("e9") == []


def test_import_tool_keeps_versions_usage_and_status(reg: ToolRegistry) -> None:
    src = InProcessToolRegistry(HashingEmbedder())
    src.register(macro("m", "first doc", "a b", "c d"))
    src.register(macro("m", "second doc", "a b", "e f"))
    src.record_use(ToolUse(name="m", actions_run=["a b", "e f"], completed=True, reward=1.0))
    src.set_status("m", "disabled", "by hand")
    *history, current = src.versions("m")
    reg.import_tool(current, history)
    assert reg.versions("m") == src.versions("m")
    got = reg.get("m")
    assert got is not None and (got.version, got.uses, got.status) == (2, 1, "disabled")
    with pytest.raises(KeyError):
        reg.import_tool(current)


def test_reset_forgets_tools_histories_and_trajectories(reg: ToolRegistry) -> None:
    reg.register(macro("m", "first doc", "a b", "c d"))
    reg.register(macro("m", "second doc", "a b", "e f"))
    reg.register(macro("n", "another", "x y", "z w"))
    for i, env in enumerate(["toy", "toy", "tw"]):
        reg.add_trajectory(Trajectory(episode_id=f"e{i}", env_id=env, actions=["a b"]))
    assert reg.reset() == (2, 3)
    assert reg.list_tools() == [] and reg.versions("m") == [] and reg.retrieve("doc") == []
    assert reg.trajectories("toy") == [] and reg.trajectories("tw") == []
    assert reg.reset() == (0, 0)


def test_sqlite_delete_and_reset_stay_in_their_namespace(tmp_path: Path) -> None:
    path = tmp_path / "tools.sqlite"
    a = SqliteToolRegistry(path, HashingEmbedder(), "a")
    b = SqliteToolRegistry(path, HashingEmbedder(), "b")
    for reg in (a, b):
        reg.register(macro("m", "doc", "a b", "c d"))
        reg.register(macro("m", "doc 2", "a b", "c d"))
        reg.add_trajectory(Trajectory(episode_id="e1", env_id="toy", actions=["a b"]))
    assert a.delete("m") == 2 and a.reset() == (0, 1)
    assert [t.version for t in b.versions("m")] == [1, 2] and len(b.trajectories("toy")) == 1
    a.close()
    b.close()


def test_sqlite_persists_across_instances_and_isolates_namespaces(tmp_path: Path) -> None:
    path = tmp_path / "tools.sqlite"
    a = SqliteToolRegistry(path, HashingEmbedder(), "alice")
    a.register(macro("m", "open the chest", "take key", "open chest"))
    a.register(macro("m", "open the chest, v2", "take key", "open chest"))
    a.record_use(ToolUse(name="m", actions_run=["take key"], completed=False))
    a.add_trajectory(Trajectory(episode_id="e1", env_id="toy", actions=["x", "y"], seed=3))
    a.close()

    again = SqliteToolRegistry(path, HashingEmbedder(), "alice")
    t = again.get("m")
    assert t is not None and (t.version, t.uses, t.failures) == (2, 1, 1)
    assert [v.doc for v in again.versions("m")] == ["open the chest", "open the chest, v2"]
    assert again.retrieve("open the chest", k=1)[0].name == "m"
    assert again.trajectories("toy")[0].seed == 3
    again.close()

    bob = SqliteToolRegistry(path, HashingEmbedder(), "bob")
    assert bob.list_tools() == [] and bob.get("m") is None and bob.trajectories("toy") == []
    bob.close()

    ro = SqliteToolRegistry(path, HashingEmbedder(), "alice", read_only=True)
    assert [x.name for x in ro.list_tools()] == ["m"]
    ro.close()
    with pytest.raises(ToolRegistryError, match="no tool registry"):
        SqliteToolRegistry(tmp_path / "missing.sqlite", HashingEmbedder(), read_only=True)


def test_sqlite_reembeds_after_embedder_change(tmp_path: Path) -> None:
    path = tmp_path / "tools.sqlite"
    a = SqliteToolRegistry(path, HashingEmbedder(dim=64), "ns")
    a.register(macro("chest", "open the locked chest", "take key", "open chest"))
    a.register(macro("cook", "cook the carrot", "take carrot", "cook carrot"))
    a.close()
    b = SqliteToolRegistry(path, HashingEmbedder(dim=128), "ns")
    assert b.retrieve("cook a carrot", k=1)[0].name == "cook"
    b.close()


def test_sqlite_retrieval_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "tools.sqlite"
    embedded: list[str] = []

    class Counting(HashingEmbedder):
        def embed(self, texts: Sequence[str]) -> Any:
            embedded.extend(texts)
            return super().embed(texts)

    a = SqliteToolRegistry(path, Counting(), "ns")
    a.register(macro("chest", "open the locked chest", "take key", "open chest"))
    a.register(macro("cook", "cook the carrot", "take carrot", "cook carrot"))
    query = "cook a carrot"
    first = a.retrieve(query, k=2)
    assert [t.name for t in first] == ["cook", "chest"]
    first.clear()  # the caller's list, not the registry's
    embedded.clear()
    assert [t.name for t in a.retrieve(query, k=2)] == ["cook", "chest"] and embedded == []
    a.set_status("cook", "disabled")  # a write here
    assert [t.name for t in a.retrieve(query, k=2)] == ["chest"]
    b = SqliteToolRegistry(path, HashingEmbedder(), "ns")
    b.set_status("cook", "active")  # a write by another connection (another process)
    assert [t.name for t in a.retrieve(query, k=2)] == ["cook", "chest"]
    b.revise("chest", "doc", doc="cook the carrot in the pot")
    assert a.retrieve(query, k=2)[1].doc == "cook the carrot in the pot"
    a.close()
    b.close()


def test_sqlite_failed_transaction_rolls_back(tmp_path: Path) -> None:
    reg = SqliteToolRegistry(tmp_path / "t.sqlite", HashingEmbedder())
    with pytest.raises(RuntimeError), reg.atomic():
        reg.register(macro("m", "doc", "a b", "c d"))
        raise RuntimeError("boom")
    assert reg.get("m") is None
    reg.close()


def test_sqlite_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    """Two connections (as two processes would have) count uses of the same tool."""
    import threading

    path = tmp_path / "tools.sqlite"
    first = SqliteToolRegistry(path, HashingEmbedder())
    first.register(macro("m", "doc", "a b", "c d"))
    second = SqliteToolRegistry(path, HashingEmbedder())

    def use(reg: SqliteToolRegistry) -> None:
        for _ in range(40):
            reg.record_use(ToolUse(name="m", actions_run=["a b"], completed=True))

    threads = [threading.Thread(target=use, args=(r,)) for r in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tool = first.get("m")
    assert tool is not None and tool.uses == 80 and tool.successes == 80
    first.close()
    second.close()
