"""``evolvent tools``: list, show, episodes, disable, enable, rollback, export, import, delete,
reset; one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli_tools import app
from memory import HashingEmbedder
from toolsmith import SqliteToolRegistry, Tool, ToolProvenance, ToolUse, Trajectory

runner = CliRunner()


@pytest.fixture
def mem(evolvent_home: Path) -> Path:
    """The registry lives at ``<memory path>/tools.sqlite``; memory defaults to home."""
    return evolvent_home / "memory"


def fill(mem: Path, namespace: str = "default") -> None:
    reg = SqliteToolRegistry(mem / "tools.sqlite", HashingEmbedder(), namespace)
    reg.register(
        Tool(
            name="take_x__slice_x",
            kind="macro",
            doc="take and slice",
            steps=["take {X}", "slice {X}"],
            slots=["X"],
        )
    )
    reg.register(
        Tool(
            name="take_x__slice_x",
            kind="macro",
            doc="take and slice",
            steps=["take {X}", "slice {X}", "eat {X}"],
            slots=["X"],
        )
    )
    reg.record_use(ToolUse(name="take_x__slice_x", actions_run=["take carrot"], completed=False))
    reg.register(
        Tool(
            name="junk",
            kind="code",
            doc="junk",
            code="x",
            status="rejected",
            reason="static check: code does not parse",
            provenance=ToolProvenance(source="llm", episode_ids=["run-7-0"]),
        )
    )
    reg.close()


def test_list_without_a_registry_is_empty(mem: Path) -> None:
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0 and "tools (0)" in r.output
    r = runner.invoke(app, ["show", "nope"])
    assert r.exit_code == 1
    assert "no tool 'nope': no tools have been made or imported yet" in r.output
    assert not (mem / "tools.sqlite").exists()  # read-only commands create nothing


def test_list_show_and_errors(mem: Path) -> None:
    fill(mem)
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0, r.output
    assert "take_x__slice_x(X)" in r.output and "v2" in r.output and "junk" in r.output
    assert "rejected" in r.output and "0%" in r.output
    rows = [
        json.loads(line)
        for line in runner.invoke(
            app, ["list", "--json", "--status", "rejected"]
        ).output.splitlines()
    ]
    assert [row["name"] for row in rows] == ["junk"]
    assert runner.invoke(app, ["list", "--status", "nope"]).exit_code == 2
    # Only what one episode's trajectory gave.
    r = runner.invoke(app, ["list", "--json", "--episode", "run-7-0"])
    assert [json.loads(line)["name"] for line in r.output.splitlines()] == ["junk"]
    r = runner.invoke(app, ["list", "--episode", "run-7-0"])
    assert "tools mined from episode run-7-0 (1)" in r.output
    assert runner.invoke(app, ["list", "--json", "--episode", "run-8-0"]).output == ""
    r = runner.invoke(app, ["list", "--episode", " "])
    assert r.exit_code == 2 and "--episode must not be blank" in r.output

    shown = json.loads(runner.invoke(app, ["show", "take_x__slice_x"]).output)
    assert shown["version"] == 2 and shown["uses"] == 1 and shown["utility"] == pytest.approx(1 / 3)
    assert [v["version"] for v in shown["versions"]] == [1]
    assert shown["versions"][0]["steps"] == ["take {X}", "slice {X}"]
    assert (
        json.loads(runner.invoke(app, ["show", "junk"]).output)["reason"]
        == "static check: code does not parse"
    )

    r = runner.invoke(app, ["show", "nope"])
    assert r.exit_code == 1 and "no tool 'nope' in namespace 'default'" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert runner.invoke(app, ["show", "take_x__slice_x", "--namespace", "other"]).exit_code == 1


def test_disable_enable_rollback(mem: Path) -> None:
    fill(mem)
    assert runner.invoke(app, ["disable", "take_x__slice_x", "--reason", "too slow"]).exit_code == 0
    reg = SqliteToolRegistry(mem / "tools.sqlite", HashingEmbedder())
    tool = reg.get("take_x__slice_x")
    assert tool is not None and (tool.status, tool.reason) == ("disabled", "too slow")
    assert runner.invoke(app, ["enable", "take_x__slice_x"]).exit_code == 0
    assert reg.get("take_x__slice_x").status == "active"  # type: ignore[union-attr]
    r = runner.invoke(app, ["enable", "junk"])
    assert r.exit_code == 1 and "failed validation and cannot be enabled" in r.output
    assert runner.invoke(app, ["disable", "ghost"]).exit_code == 1

    r = runner.invoke(app, ["rollback", "take_x__slice_x", "1"])
    assert r.exit_code == 0 and "now v3 (rolled back to v1)" in r.output
    assert reg.get("take_x__slice_x").steps == ["take {X}", "slice {X}"]  # type: ignore[union-attr]
    r = runner.invoke(app, ["rollback", "take_x__slice_x", "7"])
    assert r.exit_code == 1 and "has no version 7; it has v1, v2, v3" in r.output
    reg.close()


def test_export_jsonl(mem: Path, tmp_path: Path) -> None:
    fill(mem)
    fill(mem, namespace="other")
    target = tmp_path / "tools.jsonl"
    r = runner.invoke(app, ["export", "--out", str(target)])
    assert r.exit_code == 0 and "exported 2 tools" in r.output
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert {row["name"] for row in rows} == {"take_x__slice_x", "junk"}
    assert next(r for r in rows if r["name"] == "take_x__slice_x")["versions"][0]["version"] == 1
    lines = runner.invoke(app, ["export", "--namespace", "other"]).output.splitlines()
    assert len(lines) == 2 and Tool.model_validate(json.loads(lines[0])).name
    # A destination that cannot be written is one line, exit 2; nothing is left behind.
    for bad, why in [
        (tmp_path / "no" / "such" / "t.jsonl", "No such file or directory"),
        (tmp_path, "it is a directory"),
    ]:
        r = runner.invoke(app, ["export", "--out", str(bad)])
        assert r.exit_code == 2 and f"cannot write {bad}: {why}" in r.output, r.output
        assert r.exception is None or isinstance(r.exception, SystemExit)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".part") == []


def test_delete_is_all_or_nothing(mem: Path) -> None:
    r = runner.invoke(app, ["delete", "junk"])
    assert r.exit_code == 1 and "no tools yet" in r.output
    assert not (mem / "tools.sqlite").exists()
    fill(mem)
    fill(mem, namespace="other")
    r = runner.invoke(app, ["delete", "junk", "ghost"])
    assert r.exit_code == 1 and "not found in namespace 'default': 'ghost'" in r.output
    assert "nothing deleted" in r.output and len(r.output.strip().splitlines()) <= 2
    reg = SqliteToolRegistry(mem / "tools.sqlite", HashingEmbedder())
    assert reg.get("junk") is not None
    r = runner.invoke(app, ["delete", "take_x__slice_x", "junk", "junk"])
    assert r.exit_code == 0 and "deleted 2 tools (3 versions)" in r.output, r.output
    assert reg.list_tools() == [] and reg.versions("take_x__slice_x") == []
    assert runner.invoke(app, ["show", "junk"]).exit_code == 1
    other = SqliteToolRegistry(mem / "tools.sqlite", HashingEmbedder(), "other")
    assert len(other.list_tools()) == 2  # another namespace is left alone
    reg.close()
    other.close()


def test_reset_asks_first(mem: Path) -> None:
    assert "nothing to delete" in runner.invoke(app, ["reset", "--yes"]).output
    fill(mem)
    reg = SqliteToolRegistry(mem / "tools.sqlite", HashingEmbedder())
    reg.add_trajectory(Trajectory(episode_id="e1", env_id="toy:keys", actions=["a", "b"]))
    r = runner.invoke(app, ["reset"], input="n\n")
    assert (
        r.exit_code == 1
        and "delete all 2 tools of namespace 'default' and the 1 stored" in r.output
    )
    assert len(reg.list_tools()) == 2
    r = runner.invoke(app, ["reset"], input="y\n")
    assert r.exit_code == 0 and "deleted 2 tools and 1 stored episodes" in r.output, r.output
    assert reg.list_tools() == [] and reg.trajectories("toy:keys") == []
    r = runner.invoke(app, ["reset"])  # nothing left: nothing to ask
    assert r.exit_code == 0 and "nothing to delete" in r.output
    reg.close()


def test_stored_episodes_are_read_back_from_their_listing(mem: Path, tmp_path: Path) -> None:
    """`tools episodes --json` is their export: a backup restored keeps what macros are
    mined from and replayed on (tools export carries the tools only)."""
    reg = SqliteToolRegistry(mem / "tools.sqlite", HashingEmbedder())
    reg.add_trajectory(Trajectory(episode_id="e1", env_id="toy:keys", actions=["a", "b"], seed=3))
    reg.add_trajectory(
        Trajectory(episode_id="e2", env_id="toy:keys", actions=["c", "d"], from_tool=[True, False])
    )
    reg.close()
    listed = runner.invoke(app, ["episodes", "--json"]).stdout
    assert len(listed.splitlines()) == 2
    saved = tmp_path / "episodes.jsonl"
    saved.write_text(listed)
    assert runner.invoke(app, ["reset", "--yes"]).exit_code == 0
    r = runner.invoke(app, ["import-episodes", str(saved)])
    assert r.exit_code == 0 and "imported 2 stored episodes into namespace default" in r.output
    assert runner.invoke(app, ["episodes", "--json"]).stdout == listed
    for text, message in [
        (listed + listed.splitlines()[0], "episodes.jsonl:3: episode 'e1' of toy:keys is on"),
        ('{"episode_id": "x", "env_id": "e", "actions": ["a"], "score": NaN}', "score: Input"),
        ('{"episode_id": "x", "env_id": "e", "actions": ["a"], "from_tool": []}\n{}', ":2: not"),
    ]:
        saved.write_text(text)
        r = runner.invoke(app, ["import-episodes", str(saved)])
        assert r.exit_code == 2 and message in r.output and "nothing imported" in r.output
    assert runner.invoke(app, ["episodes", "--json"]).stdout == listed


def test_import_reads_an_export_back(mem: Path, tmp_path: Path) -> None:
    fill(mem)
    target = tmp_path / "tools.jsonl"
    assert runner.invoke(app, ["export", "--out", str(target)]).exit_code == 0
    r = runner.invoke(app, ["import", str(target), "--namespace", "copy"])
    assert r.exit_code == 0 and "imported 2 tools into namespace copy" in r.output, r.output
    src = SqliteToolRegistry(mem / "tools.sqlite", HashingEmbedder())
    copy = SqliteToolRegistry(mem / "tools.sqlite", HashingEmbedder(), "copy")
    for name in ("take_x__slice_x", "junk"):
        assert copy.versions(name) == src.versions(name)
    # A name the namespace has already: an error, and nothing is imported.
    copy.delete("junk")
    r = runner.invoke(app, ["import", str(target), "--namespace", "copy"])
    assert r.exit_code == 1 and "already has take_x__slice_x; nothing imported" in r.output
    assert copy.get("junk") is None
    src.close()
    copy.close()


def test_import_checks_every_row_first(mem: Path, tmp_path: Path) -> None:
    good = {"name": "m", "kind": "macro", "doc": "d", "steps": ["a", "b"], "version": 2}
    older = {**good, "version": 1}
    evil = {
        "name": "evil",
        "kind": "code",
        "doc": "d",
        "code": "import os\ndef run(observation, admissible):\n    return os.listdir()",
    }
    cases: list[tuple[list[Any], str]] = [
        ([good, "not json"], "t.jsonl:2: not JSON"),
        ([good, {"name": "x"}], "t.jsonl:2: not a tool (kind: Field required)"),
        ([{**good, "versions": [{**older, "name": "other"}]}], "the versions of 'm' must be"),
        ([{**good, "versions": [older, older]}], "each once and older than v2"),
        ([good, good], "t.jsonl: m more than once"),
        ([good, evil], "t.jsonl:2: code tool 'evil' fails the static check (imports os"),
        ([{**good, "args": {"X": "carrot"}}], "is an offer (args set), not a tool"),
        ([{**good, "reward": float("nan")}], "not a tool (reward: Input should be a finite"),
        ([{**good, "successes": -1}], "not a tool (successes: Input should be greater than"),
        ([{**good, "name": ""}], "not a tool (name: String should match pattern"),
        ([{**good, "name": "bad name!"}], "not a tool (name: String should match pattern"),
        ([{**good, "steps": []}], "not a tool (the row: a macro needs at least one step)"),
    ]
    target = tmp_path / "t.jsonl"
    for rows, message in cases:
        target.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows))
        r = runner.invoke(app, ["import", str(target)])
        assert r.exit_code == 2 and message in r.output, (message, r.output)
        assert "Traceback" not in r.output
    assert not (mem / "tools.sqlite").exists()  # nothing was written, not even the file
    target.write_bytes(b"\xff\xfe")
    assert "not UTF-8 text" in runner.invoke(app, ["import", str(target)]).output
    assert "no such file" in runner.invoke(app, ["import", str(tmp_path / "no.jsonl")]).output
    # A rejected code tool is kept as it was (it cannot be enabled); the versions come along.
    rejected = {**evil, "status": "rejected", "reason": "static check: imports os"}
    target.write_text(json.dumps({**good, "versions": [older]}) + "\n" + json.dumps(rejected))
    r = runner.invoke(app, ["import", str(target)])
    assert r.exit_code == 0 and "imported 2 tools" in r.output, r.output
    reg = SqliteToolRegistry(mem / "tools.sqlite", HashingEmbedder())
    assert [t.version for t in reg.versions("m")] == [1, 2]
    assert reg.get("evil").status == "rejected"  # type: ignore[union-attr]
    reg.close()


def test_episodes_lists_what_macros_are_mined_from(mem: Path) -> None:
    r = runner.invoke(app, ["episodes"])
    assert r.exit_code == 0 and "stored episodes (0)" in r.output
    reg = SqliteToolRegistry(mem / "tools.sqlite", HashingEmbedder())
    actions = ["go west", "take key", "go east", "open chest"]
    reg.add_trajectory(Trajectory(episode_id="run-1-0", env_id="toy:keys", seed=5, actions=actions))
    reg.add_trajectory(Trajectory(episode_id="run-2-0", env_id="tw", actions=["a", "b"], score=3))
    reg.close()
    r = runner.invoke(app, ["episodes"])
    assert r.exit_code == 0 and "stored episodes (2)" in r.output, r.output
    assert "run-1-0" in r.output and "go west; take key; go east; ..." in r.output
    rows = [
        json.loads(x)
        for x in runner.invoke(app, ["episodes", "--json", "--env", "tw"]).output.splitlines()
    ]
    assert [(row["episode_id"], row["actions"], row["score"]) for row in rows] == [
        ("run-2-0", ["a", "b"], 3.0)
    ]
