"""The benchmark harness: seeds, arms, per-episode JSONL, resume, concurrency, report."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from rich.console import Console
from typer.testing import CliRunner

from agent.config import Settings, load_settings
from agent.llm.base import LLMClient
from agent.llm.scripted import Answer, ScriptedLLM
from benchmarks import report
from benchmarks.harness import (
    ARM_NAMES,
    ArmState,
    Backends,
    BenchSpec,
    BenchSpecError,
    EpisodeLog,
    arm_settings,
    frozen,
    parse_seeds,
    run_bench,
)
from benchmarks.harness.cli import bench
from memory import HashingEmbedder, MemoryStore
from toolsmith.registry import InProcessToolRegistry
from toolsmith.synthesizer import Toolsmith


class Killed(BaseException):
    """Simulates the process dying in the middle of an episode."""


STRUCTURED: dict[str, dict[str, Any]] = {
    "Subject": {"subject": "wandering around"},
    "MistakeNote": {
        "subject": "wandering around",
        "what_went_wrong": "The attempt failed because it wandered.",
        "correct_approach": "Find the key first, then the chest.",
        "strategy": "Take the key before opening the chest.",
        "anti_patterns": ["looking around instead of acting"],
    },
    "Insights": {"insights": ["Take the key before opening the chest."]},
}


def policy(kill_when: Path | None = None, after: int = 0) -> ScriptedLLM:
    """Deterministic: open or take when possible, else a move picked by a hash of the
    prompt. With ``kill_when``, dies once that JSONL holds ``after`` episodes."""

    def respond(kind: str, prompt: str, about: Sequence[str] | type[BaseModel] | None) -> Answer:
        if kill_when is not None and kill_when.is_file():
            done = len(kill_when.read_text().splitlines())
            if done >= after:
                raise Killed()
        if kind == "structured":
            assert isinstance(about, type)
            return STRUCTURED.get(about.__name__, {})
        if kind != "choose":
            return "find the key, then open the chest"
        assert isinstance(about, list)
        for want in ("open chest", "take key"):
            if want in about:
                return want
        moves: list[str] = sorted(o for o in about if o.startswith("go ")) or sorted(about)
        digest = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
        return moves[digest % len(moves)]

    return ScriptedLLM(responder=respond)


def fake_backends(kill_when: Path | None = None, after: int = 0) -> Backends:
    def open_state(settings: Settings, state_dir: Path) -> ArmState:
        store = MemoryStore.in_memory(HashingEmbedder(), namespace=settings.memory.namespace)
        return ArmState(store, Toolsmith(InProcessToolRegistry(store.embedder)), [store.close])

    def make_llm(settings: Settings) -> LLMClient:
        return policy(kill_when, after)

    return Backends(open_state, make_llm)


def spec(out: Path, **kw: Any) -> BenchSpec:
    args: dict[str, Any] = {
        "env": "toy:keys",
        "train_seeds": "0-3",
        "test_seeds": "100-102",
        "arms": "frozen,full",
        "out": out,
        "max_steps": 6,
    }
    return BenchSpec.parse(**{**args, **kw})


def base(home: Path) -> Settings:
    return load_settings(None, home=str(home), **{"agent.reflection_max_tokens": 0})


def quiet() -> Console:
    return Console(file=io.StringIO(), force_terminal=False)


def lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]


def key(r: dict[str, Any]) -> tuple[str, int, str, int]:
    return (r["arm"], r["repeat"], r["phase"], r["index"])


@pytest.fixture(autouse=True)
def _isolated(evolvent_home: Path) -> None:
    """No EVOLVENT_* variable of the caller leaks into the settings."""


# -- spec -------------------------------------------------------------------------------


def test_seed_ranges() -> None:
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("7") == [7]
    assert parse_seeds(" 1, 5-6 ,10") == [1, 5, 6, 10]
    assert parse_seeds("1000-1019") == list(range(1000, 1020))
    for bad, msg in [
        ("", "empty"),
        ("3-1", "end is before the start"),
        ("a-3", "bad seed range 'a-3'"),
        ("-1", "bad seed range"),
        ("1-", "bad seed range"),
        ("1,,2", "bad seed range"),
        ("1-3,2", "repeats seeds \\[2\\]"),
    ]:
        with pytest.raises(BenchSpecError, match=msg):
            parse_seeds(bad)


def test_spec_validation(tmp_path: Path) -> None:
    s = spec(tmp_path, repeats=2)
    assert s.train_seeds == [0, 1, 2, 3] and s.test_seeds == [100, 101, 102]
    assert s.stream(0) == [0, 1, 2, 3]
    assert sorted(s.stream(1)) == [0, 1, 2, 3] and s.stream(1) == s.stream(1)
    with pytest.raises(BenchSpecError, match="unknown arm 'nope'; valid arms: frozen, episodic"):
        spec(tmp_path, arms="frozen,nope")
    with pytest.raises(BenchSpecError, match=r"unknown environment 'x:y'; valid ids:.*toy:keys"):
        spec(tmp_path, env="x:y")
    with pytest.raises(BenchSpecError, match=r"held out, but \[2, 3\]"):
        spec(tmp_path, test_seeds="2-5")
    with pytest.raises(BenchSpecError, match="repeats"):
        spec(tmp_path, repeats=0)
    with pytest.raises(BenchSpecError, match="twice"):
        spec(tmp_path, arms="full,full")


# -- arms -------------------------------------------------------------------------------


def test_arms_switch_exactly_their_memory(tmp_path: Path) -> None:
    b = base(tmp_path)
    got = {a: arm_settings(b, a, tmp_path / a) for a in ARM_NAMES}

    def knobs(s: Settings) -> dict[str, bool]:
        m = s.memory
        return {
            "learn": s.agent.learn,
            "episodic": m.top_k > 0 and m.action_hints > 0,
            "notes": m.notebook_batch > 0,
            "experiences": m.distill_every > 0,
            "tools": s.agent.use_tools,
        }

    off = {"episodic": False, "notes": False, "experiences": False, "tools": False}
    assert knobs(got["frozen"]) == {"learn": False, **off}
    for single in ("episodic", "notes", "experiences", "tools"):
        assert knobs(got[single]) == {"learn": True, **off, single: True}, single
    assert knobs(got["full"]) == {"learn": True, **{k: True for k in off}}
    assert got["episodic"].memory.action_hints > 0
    assert got["episodic"].memory.top_k == 3
    # No two arms share learned state.
    assert len({s.memory.namespace for s in got.values()}) == len(ARM_NAMES)
    assert len({s.memory_path for s in got.values()}) == len(ARM_NAMES)
    assert len({s.checkpoint_path for s in got.values()}) == len(ARM_NAMES)
    # Held-out phases keep the arm's retrieval but learn nothing.
    f = frozen(got["full"])
    assert not f.agent.learn and f.memory.top_k == 3 and f.agent.use_tools
    # `full` turns on a knob the base had at 0.
    b0 = load_settings(None, home=str(tmp_path), **{"memory.distill_every": 0})
    assert arm_settings(b0, "full", tmp_path / "x").memory.distill_every == 5


# -- runner -----------------------------------------------------------------------------


def test_every_episode_is_a_jsonl_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    records = run_bench(spec(out), base(tmp_path), backends=fake_backends(), console=quiet())
    on_disk = lines(out)
    # 2 arms x (3 pre + 4 train + 3 post)
    assert len(on_disk) == len(records) == 20
    assert len({key(r) for r in on_disk}) == 20
    first = on_disk[0]
    assert {"arm", "repeat", "phase", "index", "success", "normalized_score", "tokens"} <= set(
        first
    )
    assert [r["phase"] for r in on_disk if r["arm"] == "frozen"] == ["pre"] * 3 + ["train"] * 4 + [
        "post"
    ] * 3
    train = [r for r in on_disk if r["phase"] == "train"]
    # The same stream order in every arm.
    assert [r["seed"] for r in train if r["arm"] == "frozen"] == [0, 1, 2, 3]
    assert [r["seed"] for r in train if r["arm"] == "full"] == [0, 1, 2, 3]
    # Frozen learns nothing; full writes memories while training, and only then.
    assert all(not r["memories_written"] for r in on_disk if r["arm"] == "frozen")
    assert any(r["memories_written"] for r in train if r["arm"] == "full")
    assert all(not r["memories_written"] for r in on_disk if r["phase"] != "train")
    assert sum(train[-1]["memory_stats"].values()) > 0 and "tool" in train[-1]["memory_stats"]


def test_resume_after_kill_skips_finished_episodes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    log = out / "episodes.jsonl"
    with pytest.raises(Killed):
        run_bench(spec(out), base(tmp_path), backends=fake_backends(log, 14), console=quiet())
    before = lines(out)
    # Killed in the 15th episode (full's 2nd training episode): the 14 that ended are kept.
    assert len(before) == 14
    assert key(before[-1]) == ("full", 0, "train", 0)
    # A kill can leave half a line; it is ignored and the next line starts on its own.
    with log.open("a") as f:
        f.write('{"arm": "full", "rep')
    assert len(EpisodeLog(log).load()) == 14
    told = io.StringIO()
    console = Console(file=told, force_terminal=False)
    after = run_bench(spec(out), base(tmp_path), backends=fake_backends(), console=console)
    assert len(after) == 20
    # With no terminal to draw the bar on (a log file), each episode is told in a line; the
    # count goes on from the 14 kept.
    assert "preparing the toy:keys games of 7 seeds (made once" in told.getvalue()
    progress = [ln.split(":")[0] for ln in told.getvalue().splitlines() if ln.startswith("[")]
    assert progress == [
        "[15/20] full r0 train 1 (seed 1)",
        "[16/20] full r0 train 2 (seed 2)",
        "[17/20] full r0 train 3 (seed 3)",
        "[18/20] full r0 post 0 (seed 100)",
        "[19/20] full r0 post 1 (seed 101)",
        "[20/20] full r0 post 2 (seed 102)",
    ]
    final = EpisodeLog(log).load()
    assert set(final) == {key(r) for r in after}
    # Finished episodes were not played again (each appears once, unchanged).
    kept = [json.loads(x) for x in log.read_text().splitlines() if x.endswith("}")]
    assert len(kept) == 20
    assert kept[:14] == before
    # Same final set as a run never killed.
    clean = run_bench(
        spec(tmp_path / "clean"), base(tmp_path / "h2"), backends=fake_backends(), console=quiet()
    )
    assert {key(r) for r in clean} == set(final)
    assert {key(r): r["seed"] for r in clean} == {k: r["seed"] for k, r in final.items()}
    # A second rerun has nothing left to do.
    assert run_bench(spec(out), base(tmp_path), backends=fake_backends(), console=quiet())
    assert len(log.read_text().splitlines()) == 21  # 20 + the torn line


def test_concurrency_does_not_change_frozen_results(tmp_path: Path) -> None:
    def frozen_phase_results(n: int) -> dict[tuple[str, int, str, int], tuple[Any, ...]]:
        s = spec(tmp_path / f"c{n}", test_seeds="100-107", concurrency=n)
        records = run_bench(s, base(tmp_path / f"h{n}"), backends=fake_backends(), console=quiet())
        return {
            key(r): (r["seed"], r["success"], r["score"], r["steps"], r["actions"], r["tokens"])
            for r in records
            if r["phase"] != "train"
        }

    one, four = frozen_phase_results(1), frozen_phase_results(4)
    assert len(one) == 2 * 2 * 8
    assert one == four
    # The scripted policy is not trivially constant: outcomes differ between seeds.
    assert len({v[3] for v in one.values()}) > 1
    # Four workers really ran: each wrote its own checkpoint file.
    assert len(list((tmp_path / "c4" / "state" / "r0" / "frozen").glob("pre-w*.sqlite"))) > 1


# -- report -----------------------------------------------------------------------------


def synthetic(out: Path) -> None:
    rows: list[dict[str, Any]] = []
    train_success = {0: [0, 0, 1, 1, 1, 1], 1: [0, 1, 0, 1, 1, 1]}
    for rep, succ in train_success.items():
        for phase, values in (("pre", [0, 0]), ("train", succ), ("post", [1, rep])):
            for i, s in enumerate(values):
                rows.append(
                    {
                        "arm": "full",
                        "repeat": rep,
                        "phase": phase,
                        "index": i,
                        "env": "toy:keys",
                        "seed": i,
                        "success": bool(s),
                        "normalized_score": 0.5 * (1 + s),
                        "steps": 4 + i,
                        "tokens": 100 * (i + 1),
                        "wall_s": 0.5,
                        "memories_written": ["ep-1", "act-2", "act-3"] if phase == "train" else [],
                        "tools_written": [],
                        "memory_stats": {"episode": 6 * (rep + 1), "tool": rep},
                    }
                )
    out.mkdir(parents=True)
    (out / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_report_numbers_and_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    synthetic(out)
    assert report.main([str(out)]) == 0
    for name in ("curves.png", "curve_full.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "report.json").read_text())
    full = data["arms"]["full"]
    assert data["episodes"] == 2 * (2 + 6 + 2)
    assert full["phases"]["pre"]["success_rate"] == 0.0
    assert full["phases"]["post"]["success_rate"] == 0.75
    assert full["uplift"]["success_rate"] == 0.75
    assert full["phases"]["train"]["success_rate"] == 8 / 12
    assert full["phases"]["post"]["mean_score"] == 0.875
    assert full["phases"]["train"]["mean_steps"] == 6.5
    assert full["phases"]["train"]["total_tokens"] == 2 * 2100
    # Moving average (window 5) at the 5th training episode: repeat 0 3/5, repeat 1 3/5;
    # at the 6th: 4/5 and 4/5; at the 2nd: 0 and 1/2.
    curve = full["curves"]["success"]
    assert curve["mean"][4] == pytest.approx(0.6) and curve["mean"][5] == pytest.approx(0.8)
    assert curve["mean"][1] == pytest.approx(0.25)
    assert curve["low"][4] == pytest.approx(0.6)  # identical repeats: no spread
    half = 1.96 * (0.5**0.5 * 0.5) / 2**0.5
    assert curve["high"][1] == pytest.approx(0.25 + half)
    assert full["memory"]["written_in_training"] == {"act": 12.0, "ep": 6.0, "tool": 0.0}
    assert full["memory"]["final_counts"] == {"episode": 9.0, "tool": 0.5}
    md = (out / "report.md").read_text()
    assert "| full | 0.000 | 0.750 | +0.750 |" in md
    assert "![all arms](curves.png)" in md
    assert report.main([str(tmp_path / "nowhere")]) == 2
    # A file with no episode in it is an error, not an empty report that looks like a run.
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    for text in (b"not json\n{}\n", b"\xff\xfe\x00"):
        (garbage / "episodes.jsonl").write_bytes(text)
        assert report.main([str(garbage)]) == 2
    assert sorted(p.name for p in garbage.iterdir()) == ["episodes.jsonl"]


def test_moving_average() -> None:
    assert report.moving_average([1, 0, 1, 1, 1, 0, 0], 5) == pytest.approx(
        [1, 0.5, 2 / 3, 0.75, 0.8, 0.6, 0.6]
    )


# -- command ----------------------------------------------------------------------------


def test_bench_command_rejects_unknown_arm_and_env(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(bench)
    app.command("other")(lambda: None)  # two commands: typer keeps `bench` as a subcommand
    runner = CliRunner()
    r = runner.invoke(app, ["bench", "--env", "toy:keys", "--arms", "frozen,bogus"])
    assert r.exit_code == 2
    assert "unknown arm 'bogus'; valid arms: frozen, episodic, notes" in r.output
    r = runner.invoke(app, ["bench", "--env", "nope:x", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "valid ids:" in r.output and "toy:keys" in r.output
    r = runner.invoke(app, ["bench", "--env", "toy:keys", "--train-seeds", "5-1"])
    assert r.exit_code == 2 and "end is before the start" in r.output
    # An --out that cannot be a folder: one line, before anything is played.
    a_file = tmp_path / "taken"
    a_file.write_text("")
    fast = ["--env", "toy:keys", "--train-seeds", "0", "--test-seeds", "1", "--arms", "frozen"]
    r = runner.invoke(app, ["bench", *fast, "--out", str(a_file)])
    assert r.exit_code == 2 and f"--out {a_file} is a file" in r.output, r.output
    below = a_file / "run"
    r = runner.invoke(app, ["bench", *fast, "--out", str(below)])
    assert r.exit_code == 2 and f"cannot make the output folder {below}" in r.output, r.output


def test_an_interrupted_bench_says_how_to_resume_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (KeyboardInterrupt out of the harness): exit 130 and one line, not cut at the
    80 columns a log file gets."""
    import benchmarks.harness.runner as harness_runner

    def interrupted(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise KeyboardInterrupt

    monkeypatch.setattr(harness_runner, "run_bench", interrupted)
    app = typer.Typer()
    app.command()(bench)
    app.command("other")(lambda: None)
    out = tmp_path / ("a-rather-long-folder-name-for-the-runs-of-this-benchmark" * 2)
    r = CliRunner().invoke(app, ["bench", "--env", "toy:keys", "--out", str(out)])
    assert r.exit_code == 130
    assert r.output.splitlines() == [
        f"interrupted: finished episodes are in {out}/episodes.jsonl; run the same command "
        "again to resume"
    ]
