"""`evolvent memory ...` against a real embedded Chroma store."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.cli import app, main
from memory import HashingEmbedder, MemoryStore, default_embedder
from memory.records import MemoryRecord, Provenance

pytestmark = pytest.mark.integration

runner = CliRunner()


def _fill(home: Path) -> tuple[str, str]:
    store = MemoryStore.open(path=home / "memory", namespace="default", embedder=default_embedder())
    try:
        prov = Provenance(episode_id="run-1-0", env_id="textworld:cooking", seed=3)
        ep = store.episodes.add("cook a meal", "read the cookbook", True, 1.0, provenance=prov)
        store.episodes.reinforce([ep], 1.0)
        note = store.notes.add("burnt food | cook a meal", "do not cook twice")
    finally:
        store.close()
    return ep, note


def test_list_show_search_export_reset_import_delete(evolvent_home: Path, tmp_path: Path) -> None:
    ep, note = _fill(evolvent_home)

    r = runner.invoke(app, ["memory", "stats"])
    assert r.exit_code == 0, r.output
    assert "episode" in r.output and "note" in r.output

    r = runner.invoke(app, ["memory", "list", "--json"])
    rows = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    assert {row["id"] for row in rows} == {ep, note}

    # Paged, and only what one episode taught (what `delete --episode` would delete).
    r = runner.invoke(app, ["memory", "list", "--json", "--offset", "1"])
    assert [json.loads(line)["id"] for line in r.output.splitlines()] == [rows[1]["id"]]
    r = runner.invoke(app, ["memory", "list", "--json", "--episode", "run-1-0"])
    assert [json.loads(line)["id"] for line in r.output.splitlines()] == [ep]
    r = runner.invoke(app, ["memory", "list", "--episode", "run-1-0"])
    assert "memories taught by episode run-1-0 (1 shown)" in r.output and ep in r.output
    r = runner.invoke(app, ["memory", "list", "--episode", "nobody", "--json"])
    assert r.exit_code == 0 and r.output == ""
    r = runner.invoke(app, ["memory", "list", "--episode", " "])
    assert r.exit_code == 2 and "--episode must not be blank" in r.output

    r = runner.invoke(app, ["memory", "show", ep])
    shown = json.loads(r.output)
    assert shown["q"] == pytest.approx(0.3) and shown["provenance"]["episode_id"] == "run-1-0"

    r = runner.invoke(app, ["memory", "search", "prepare a meal", "-k", "3"])
    assert r.exit_code == 0 and ep in r.output

    dump = tmp_path / "mem.jsonl"
    r = runner.invoke(app, ["memory", "export", "--out", str(tmp_path / "no" / "mem.jsonl")])
    assert r.exit_code == 2 and "cannot write" in r.output and "No such file" in r.output
    assert isinstance(r.exception, SystemExit)  # one line, no traceback
    assert runner.invoke(app, ["memory", "export", "--out", str(dump)]).exit_code == 0
    before = sorted(dump.read_text().splitlines())
    assert len(before) == 2

    r = runner.invoke(app, ["memory", "reset"], input="n\n")
    assert r.exit_code == 1 and "nothing deleted" in r.output
    assert runner.invoke(app, ["memory", "reset", "--yes"]).exit_code == 0
    r = runner.invoke(app, ["memory", "list", "--json"])
    assert not [line for line in r.output.splitlines() if line.startswith("{")]

    assert runner.invoke(app, ["memory", "import", str(dump)]).exit_code == 0
    again = tmp_path / "again.jsonl"
    assert runner.invoke(app, ["memory", "export", "--out", str(again)]).exit_code == 0
    assert sorted(again.read_text().splitlines()) == before  # exact round trip

    # All the ids given, or none: an unknown one deleted the others and said it failed.
    r = runner.invoke(app, ["memory", "delete", note, "ep-nope"])
    assert r.exit_code == 1 and "not found in namespace 'default': 'ep-nope' (nothing" in r.output
    assert runner.invoke(app, ["memory", "show", note]).exit_code == 0
    r = runner.invoke(app, ["memory", "delete", note])
    assert r.exit_code == 0 and "deleted 1 memory" in r.output
    r = runner.invoke(app, ["memory", "show", note])
    assert r.exit_code == 1 and "no memory" in r.output

    # Everything one episode taught, at once.
    r = runner.invoke(app, ["memory", "delete", "--episode", "run-1-0"])
    assert r.exit_code == 0 and "deleted 1 memory of episode run-1-0" in r.output, r.output
    assert runner.invoke(app, ["memory", "show", ep]).exit_code == 1
    r = runner.invoke(app, ["memory", "delete", "--episode", "run-1-0"])
    assert r.exit_code == 1 and "no memory learned from episode" in r.output


def test_bad_input_is_one_clear_line(evolvent_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\nnot json\n')
    r = runner.invoke(app, ["memory", "import", str(bad)])
    assert r.exit_code == 2 and "bad.jsonl:2: not JSON" in r.output
    # Every row is checked before anything is written: a bad row 2 leaves row 1 out too.
    good, empty_id = '{"id": "n1", "kind": "note", "key": "k", "text": "t"}', '{"id": ""}'
    bad.write_text(f"{good}\n{empty_id}\n")
    r = runner.invoke(app, ["memory", "import", str(bad)])
    assert r.exit_code == 2 and "bad.jsonl:2: not a memory (id: " in r.output, r.output
    assert "nothing imported" in r.output
    r = runner.invoke(app, ["memory", "show", "n1"])
    assert r.exit_code != 0 and "no memory" in r.output  # no store was even created
    r = runner.invoke(app, ["memory", "list", "--kind", "nope"])
    assert r.exit_code == 2 and "valid: episode, note, experience, action, value" in r.output
    r = runner.invoke(app, ["memory", "delete"])
    assert r.exit_code == 2 and "give memory ids or --episode ID" in r.output
    r = runner.invoke(app, ["memory", "import", str(tmp_path / "missing.jsonl")])
    assert r.exit_code == 2 and "no such file" in r.output
    bad.write_bytes(b'{"id": "n1"}\n\xff\xfe\n')
    r = runner.invoke(app, ["memory", "import", str(bad)])
    assert r.exit_code == 2 and "bad.jsonl: not UTF-8 text; nothing imported" in r.output
    # An id twice in one file: which of the two was meant? (It said "imported 2".)
    bad.write_text(f"{good}\n{good}\n")
    r = runner.invoke(app, ["memory", "import", str(bad)])
    assert r.exit_code == 2 and "bad.jsonl:2: id 'n1' is on line 1 too; nothing" in r.output
    long_id = good.replace('"n1"', f'"{"x" * 201}"')
    bad.write_text(long_id + "\n")
    r = runner.invoke(app, ["memory", "import", str(bad)])
    assert r.exit_code == 2 and "(id: String should have at most 200 characters)" in r.output
    # A memory the namespace holds is replaced, and the count says so.
    bad.write_text(good + "\n")
    r = runner.invoke(app, ["memory", "import", str(bad)])
    assert r.exit_code == 0 and r.output.strip().endswith("namespace default"), r.output
    r = runner.invoke(app, ["memory", "import", str(bad)])
    assert "imported 1 memory into namespace default; 1 of them replaced the" in r.output


def test_search_by_kind_and_errors_outside_commands(
    evolvent_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ep, _ = _fill(evolvent_home)
    store = MemoryStore.open(
        path=evolvent_home / "memory", namespace="default", embedder=default_embedder()
    )
    try:
        store.import_records(
            [
                MemoryRecord(
                    id="v-1", kind="value", key="take the red potato", text="take red potato"
                )
            ]
        )
    finally:
        store.close()
    # Value (and action) records are searched by plain similarity, not as episodes.
    r = runner.invoke(app, ["memory", "search", "red potato", "--kind", "value"])
    assert r.exit_code == 0 and "v-1" in r.output and ep not in r.output, r.output
    r = runner.invoke(app, ["memory", "search", "  "])
    assert r.exit_code == 2 and "the query must not be blank" in r.output

    # A store embedded by another model (a Python API user's own embedder) is one line from
    # any command, not a traceback.
    other = MemoryStore.open(
        path=evolvent_home / "memory", namespace="hashed", embedder=HashingEmbedder()
    )
    try:
        other.notes.add("a key", "a note")
    finally:
        other.close()
    monkeypatch.setattr(sys, "argv", ["evolvent", "memory", "stats", "--namespace", "hashed"])
    monkeypatch.setattr("agent.cli.faulthandler.register", lambda *a, **kw: None)  # no fd here
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    printed = capsys.readouterr().err
    assert "error: memory 'hashed__note'" in printed and "was embedded with hashing" in printed
    assert "Traceback" not in printed
