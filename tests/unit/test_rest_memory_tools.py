"""The REST API: memories, tools, health, readiness, metrics, and the server's settings."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest
from rest_support import A, B, auth, serve

from agent.errors import ConfigError, EndpointUnreachable
from agent.llm.base import LLMClient
from agent.server.app import create_app, get_readiness
from agent.server.client import ApiError
from agent.server.config import ServerConfig, load_serve_settings, parse_api_keys
from agent.server.testing import fake_deps
from memory.records import MemoryRecord, Provenance
from toolsmith.models import Tool


def record(i: int, kind: str, key: str) -> MemoryRecord:
    return MemoryRecord(
        id=f"m-{i}",
        kind=kind,  # type: ignore[arg-type]
        key=key,
        text=f"text {i}",
        q=0.1 * i,
        provenance=Provenance(episode_id=f"ep-{i}", outcome="success", created_at=100.0 + i),
    )


RECORDS = [
    record(1, "episode", "find the key and open the chest"),
    record(2, "episode", "cook a meal with the red potato"),
    record(3, "note", "opening a locked chest without the key"),
    record(4, "experience", "keys are usually in the first rooms"),
]


def test_import_list_search_get_delete_export(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        assert s.a.import_memories(RECORDS) == 4
        page = s.a.memories(limit=3)
        assert page.total == 4 and page.next_offset == 3
        assert [m.id for m in page.items] == ["m-1", "m-2", "m-3"]
        rest = s.a.memories(limit=3, offset=3)
        assert [m.id for m in rest.items] == ["m-4"] and rest.next_offset is None
        episodes = s.a.memories(kind="episode")
        assert [m.id for m in episodes.items] == ["m-1", "m-2"] and episodes.total == 2
        found = s.a.memories(query="open the locked chest with a key", limit=2)
        assert found.items[0].id in {"m-1", "m-3"} and found.total is None
        sims = [m.similarity or 0.0 for m in found.items]
        assert sims == sorted(sims, reverse=True) and len(found.items) == 2
        assert s.a.memories(kind="note", query="chest").items[0].id == "m-3"
        got = s.a.memory("m-2")
        assert got == RECORDS[1]  # ids, values and provenance survive the round trip
        s.a.delete_memory("m-2")
        with pytest.raises(ApiError) as err:
            s.a.memory("m-2")
        assert err.value.status_code == 404
        with pytest.raises(ApiError):
            s.a.delete_memory("m-2")
        exported = list(s.a.export_memories())
        assert sorted(m.id for m in exported) == ["m-1", "m-3", "m-4"]
        raw = s.http.get("/v1/memories/export", headers=auth(A))
        assert raw.headers["content-type"].startswith("application/x-ndjson")
        assert [json.loads(line)["id"] for line in raw.text.splitlines()] == [
            m.id for m in exported
        ]
        # What one episode taught: listed (what the delete below deletes), then deleted.
        taught = s.a.memories(episode="ep-1")
        assert [m.id for m in taught.items] == ["m-1"] and taught.total == 1
        assert taught.next_offset is None
        assert s.a.memories(episode="ep-1", kind="note").total == 0
        assert s.a.memories(episode="ep-1", offset=1).items == []
        assert s.a.memories(episode="ep-9").total == 0
        assert s.b.memories(episode="ep-1").total == 0  # another namespace's
        near = s.a.memories(episode="ep-1", query="open the chest")
        assert [m.id for m in near.items] == ["m-1"] and (near.items[0].similarity or 0) > 0
        everyone = s.a.memories(query="open the chest", limit=4).items
        assert near.items[0].similarity == pytest.approx(
            next(m.similarity for m in everyone if m.id == "m-1")  # the stored vector's
        )
        assert s.http.get("/v1/memories?episode=", headers=auth(A)).status_code == 422
        # Everything one episode taught; another namespace's episode does not exist.
        assert s.http.delete("/v1/memories?episode=ep-1", headers=auth(B)).status_code == 404
        assert s.a.delete_episode_memories("ep-1") == 1
        assert sorted(m.id for m in s.a.export_memories()) == ["m-3", "m-4"]
        with pytest.raises(ApiError) as err:
            s.a.delete_episode_memories("ep-1")
        assert err.value.status_code == 404 and "no memory learned from episode" in err.value.detail
        assert s.http.delete("/v1/memories", headers=auth(A)).status_code == 422


def test_a_bad_import_line_is_named_and_nothing_is_imported(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        good = RECORDS[0].model_dump_json()
        cases: list[tuple[str | bytes, str]] = [
            (good + "\n{not json}\n", "line 2:"),
            (good + '\n{"id": "x"}\n', "line 2: kind: Field required"),
            (b"\xff\xfe", "not UTF-8"),
            # NaN and Infinity once went in and broke every listing, export and run after
            (good.replace('"q":0.1', '"q":NaN'), "line 1: q: Input should be a finite number"),
            (good.replace('"meta":{}', '"meta":{"steps":[{"q":-Infinity}]}'), "line 1: meta:"),
            (good.replace('"uses":0', '"uses":-5'), "line 1: uses: Input should be greater"),
            (f"{good}\n{good}\n", "line 2: id 'm-1' is on line 1 too"),
        ]
        for body, expected in cases:
            r = s.http.post(
                "/v1/memories/import",
                content=body,
                headers={**auth(A), "Content-Type": "application/x-ndjson"},
            )
            assert r.status_code == 422 and expected in r.json()["detail"], r.text
        assert s.a.memories().total == 0


def test_memories_are_isolated_between_namespaces(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        s.a.import_memories(RECORDS)
        assert s.b.memories().total == 0
        assert s.b.memories(query="find the key").items == []
        assert list(s.b.export_memories()) == []
        for call in (lambda: s.b.memory("m-1"), lambda: s.b.delete_memory("m-1")):
            with pytest.raises(ApiError) as err:
                call()
            assert err.value.status_code == 404
        assert s.a.memory("m-1").id == "m-1"  # B's delete did nothing


def macro(name: str, status: str = "active") -> Tool:
    return Tool(
        name=name,
        kind="macro",
        doc="Runs: go north; take key",
        steps=["go north", "take key"],
        status=status,
    )  # type: ignore[arg-type]


def test_tools_list_get_disable_enable_and_isolation(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        registry = s.deps.toolsmith("alpha").registry
        registry.register(macro("macro-north-key"))
        registry.register(macro("macro-bad", status="rejected"))
        assert [t.name for t in s.a.tools()] == ["macro-bad", "macro-north-key"]
        assert s.a.tool("macro-north-key").steps == ["go north", "take key"]
        off = s.a.disable_tool("macro-north-key")
        assert off.status == "disabled" and registry.get("macro-north-key").status == "disabled"  # type: ignore[union-attr]
        assert [t.name for t in s.a.tools(status="disabled")] == ["macro-north-key"]
        assert s.a.enable_tool("macro-north-key").status == "active"
        with pytest.raises(ApiError) as err:
            s.a.enable_tool("macro-bad")
        assert err.value.status_code == 409
        assert s.b.tools() == []
        for path in ("", "/disable", "/enable"):
            method = "GET" if not path else "POST"
            r = s.http.request(method, f"/v1/tools/macro-north-key{path}", headers=auth(B))
            assert r.status_code == 404, path
        assert s.a.tool("macro-north-key").status == "active"
        assert s.http.delete("/v1/tools/macro-north-key", headers=auth(B)).status_code == 404
        s.a.delete_tool("macro-north-key")
        assert registry.get("macro-north-key") is None
        assert [t.name for t in s.a.tools()] == ["macro-bad"]
        with pytest.raises(ApiError) as err:
            s.a.delete_tool("macro-north-key")
        assert err.value.status_code == 404


def test_tools_versions_rollback_export_and_import(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        registry = s.deps.toolsmith("alpha").registry
        registry.register(macro("macro-north-key"))
        registry.register(macro("macro-north-key").model_copy(update={"doc": "second doc"}))
        registry.register(macro("macro-bad", status="rejected"))
        assert [(t.version, t.doc) for t in s.a.tool_versions("macro-north-key")] == [
            (1, "Runs: go north; take key"),
            (2, "second doc"),
        ]
        back = s.a.rollback_tool("macro-north-key", 1)
        assert (back.version, back.doc, back.change) == (
            3,
            "Runs: go north; take key",
            "rolled back to v1",
        )
        for body, status, expected in [
            ({"version": 7}, 404, "has no version 7; it has v1, v2, v3"),
            ({"version": 0}, 422, "version"),
            ({"version": "1"}, 422, "must be an integer"),
            ({"version": 1, "x": 1}, 422, "x"),
        ]:
            r = s.http.post("/v1/tools/macro-north-key/rollback", json=body, headers=auth(A))
            assert r.status_code == status and expected in r.text, r.text
        for path in ("/versions", "/rollback"):
            method = "GET" if path == "/versions" else "POST"
            r = s.http.request(
                method, f"/v1/tools/macro-north-key{path}", headers=auth(B), json={"version": 1}
            )
            assert r.status_code == 404, path  # another namespace's tool does not exist

        rows = list(s.a.export_tools())
        assert [(r["name"], len(r["versions"])) for r in sorted(rows, key=lambda r: r["name"])] == [
            ("macro-bad", 0),
            ("macro-north-key", 2),
        ]
        assert s.b.import_tools(rows) == 2
        copied = s.deps.toolsmith("beta").registry
        assert copied.versions("macro-north-key") == registry.versions("macro-north-key")
        with pytest.raises(ApiError) as err:
            s.b.import_tools(rows[:1])
        assert err.value.status_code == 409 and "already has" in err.value.detail
        evil = {
            "name": "evil",
            "kind": "code",
            "doc": "d",
            "code": "import os\ndef run(observation, admissible):\n    return []",
        }
        ndjson = {**auth(A), "Content-Type": "application/x-ndjson"}
        cases: list[tuple[str | bytes, str]] = [
            ("{not json}\n", "line 1: not JSON"),
            ('{"name": "x"}\n', "line 1: not a tool (kind: Field required)"),
            (json.dumps(evil), "line 1: code tool 'evil' fails the static check (imports os"),
            (b"\xff\xfe", "not UTF-8"),
            (json.dumps(rows[0]) + "\n" + json.dumps(rows[0]), "more than once"),
        ]
        for body, expected in cases:
            r = s.http.post("/v1/tools/import", content=body, headers=ndjson)
            assert r.status_code == 422 and expected in r.json()["detail"], r.text
        assert registry.get("evil") is None


def test_tools_mined_by_runs_show_up(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        runs = [s.a.wait(s.a.create_run("toy:keys", seed=5, max_steps=12).id) for _ in range(2)]
        assert all(r.result for r in runs)  # two wins with the same procedure: a macro is mined
        mined = s.a.tools()
        assert mined and all(t.kind == "macro" and t.provenance.env_id == "toy:keys" for t in mined)
        # Each names the episodes it came from; the list can be asked for one episode's.
        for run in runs:
            assert s.a.tools(episode=run.id) == [
                t for t in mined if run.id in t.provenance.episode_ids
            ]
        assert any(s.a.tools(episode=run.id) for run in runs)
        assert s.a.tools(episode="run-nope") == [] and s.b.tools(episode=runs[0].id) == []


def test_health_readiness_and_metrics(evolvent_home: Path) -> None:
    with serve(evolvent_home) as s:
        assert s.a.healthy()
        ready = s.a.readiness()
        assert ready.status == "ready" and ready.checks == {"llm": "ok", "store": "ok"}
        s.a.wait(s.a.create_run("toy:keys", seed=1, max_steps=3).id)
        s.http.get("/v1/runs/run-nope", headers=auth(A))
        text = s.a.metrics()
        assert 'evolvent_runs_started_total{kind="new"} 1.0' in text
        assert 'evolvent_runs_finished_total{status="succeeded"} 1.0' in text
        assert 'evolvent_run_duration_seconds_count{status="succeeded"} 1.0' in text
        assert "evolvent_runs_running 0.0" in text
        assert 'route="/v1/runs/{run_id}",status="404"' in text
        assert 'route="/v1/runs",status="202"' in text
        s.app.dependency_overrides[get_readiness] = lambda: lambda: {"llm": "down", "store": "ok"}
        r = s.http.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["llm"] == "down"


def test_readiness_reports_an_unreachable_llm(evolvent_home: Path) -> None:
    def probe(client: LLMClient, timeout: float) -> None:
        raise EndpointUnreachable("http://127.0.0.1:9/v1", "connection refused")

    deps = fake_deps(evolvent_home, {"k": "ns"})
    deps.llm_probe = probe
    from fastapi.testclient import TestClient

    with closing(deps), TestClient(create_app(deps)) as http:
        r = http.get("/readyz")
    assert r.status_code == 503
    assert "cannot reach the LLM endpoint at http://127.0.0.1:9/v1" in r.json()["checks"]["llm"]


def test_without_keys_the_server_refuses_unless_insecure(evolvent_home: Path) -> None:
    with pytest.raises(ConfigError, match="no API keys configured"):
        fake_deps(evolvent_home, {})
    with pytest.raises(ConfigError, match="drop one of them"):
        fake_deps(evolvent_home, {"k": "ns"}, ServerConfig(insecure_no_auth=True))
    from fastapi.testclient import TestClient

    deps = fake_deps(evolvent_home, {}, ServerConfig(insecure_no_auth=True))
    with closing(deps), TestClient(create_app(deps)) as http:
        r = http.post("/v1/runs", json={"env": "toy:keys", "max_steps": 2})
        assert r.status_code == 202
        assert http.get(f"/v1/runs/{r.json()['id']}").status_code == 200


def test_api_keys_and_server_settings_from_env_and_file(
    evolvent_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert parse_api_keys(" k1:team-a , k2:team_b,") == {"k1": "team-a", "k2": "team_b"}
    for bad, why in [
        ("k1", "KEY:NAMESPACE"),
        ("k1:a,k1:b", "listed twice"),
        ("k1:bad ns!", "namespace"),
        (":ns", "KEY:NAMESPACE"),
    ]:
        with pytest.raises(ValueError, match=why) as err:
            parse_api_keys(bad)
        assert "k1" not in str(err.value)  # messages never show a key
    monkeypatch.setenv("EVOLVENT_API_KEYS", "secret-1:alpha,secret-2:beta")
    monkeypatch.setenv("EVOLVENT_SERVER__MAX_CONCURRENT_RUNS", "7")
    s = load_serve_settings()
    assert s.api_keys == {"secret-1": "alpha", "secret-2": "beta"}
    assert s.server.max_concurrent_runs == 7 and "secret-1" not in repr(s)
    monkeypatch.delenv("EVOLVENT_API_KEYS")
    cfg = tmp_path / "serve.toml"
    cfg.write_text(
        'api_keys = "file-key:gamma"\n[server]\nmax_queued_runs = 3\n[limits]\nmax_steps = 9\n'
    )
    s = load_serve_settings(cfg, insecure_no_auth=None)
    assert s.api_keys == {"file-key": "gamma"} and s.server.max_queued_runs == 3
    assert s.server.max_concurrent_runs == 7 and s.limits.max_steps == 9
    cfg.write_text("[server]\nmax_queued_runs = -1\n")
    with pytest.raises(ConfigError, match=r"server\.max_queued_runs"):
        load_serve_settings(cfg)
    # A typo in [server] is refused with the valid names, as in the agent's sections (it
    # once started the server with the default).
    cfg.write_text("[server]\nmax_concurent_runs = 2\n")
    with pytest.raises(ConfigError, match=r"server\.max_concurent_runs: unknown setting \(valid"):
        load_serve_settings(cfg)
    monkeypatch.setenv("EVOLVENT_SERVER__BOGUS", "1")
    with pytest.raises(ConfigError, match=r"server\.bogus: unknown setting .*max_queued_runs"):
        load_serve_settings()
