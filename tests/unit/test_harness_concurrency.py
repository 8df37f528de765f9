"""Batch-synchronous training with deferred learning: ``Agent.play`` / ``Agent.learn_from``,
``--concurrency N`` independent of thread timing, N = 1 as the stream, resume mid-batch."""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from test_harness import STRUCTURED, Killed, base, quiet, spec
from typer.testing import CliRunner

from agent.agent import Agent
from agent.config import Settings
from agent.deferred import PlayedEpisode, ToolUseRecorder, tool_journal
from agent.llm.base import LLMClient
from agent.llm.scripted import Answer, ScriptedLLM
from benchmarks.harness import (
    ArmState,
    Backends,
    BenchSpec,
    BenchSpecError,
    run_bench,
    with_overrides,
)
from benchmarks.harness.cli import bench as bench_command
from benchmarks.harness.records import EpisodeLog
from memory import HashingEmbedder, MemoryStore
from toolsmith.models import Tool
from toolsmith.registry import InProcessToolRegistry
from toolsmith.synthesizer import Toolsmith

Stop = Callable[[str, int], bool]
"""``(worker, call number) -> die?``; the worker is its checkpoint file's stem, e.g.
``train-w1`` (batch slot 1 of the training phase) or ``checkpoints`` (the learner)."""


_DONE = re.compile(r"^> (\S.*)$", re.MULTILINE)


def policy(*, jitter: bool = False, stop: Callable[[int], bool] | None = None) -> ScriptedLLM:
    """Deterministic in the prompt: take the key when seen, open the chest once it is held,
    a tool on one prompt in three (by hash), else a move by hash: it wins some games and
    loses others. ``jitter`` sleeps a random 0-3 ms per call (real randomness: thread timing
    differs from run to run); ``stop(n)`` true at the n-th call: the process "dies"."""
    noise = random.Random()
    calls = [0]

    def respond(kind: str, prompt: str, about: Sequence[str] | type[BaseModel] | None) -> Answer:
        if jitter:
            time.sleep(noise.uniform(0, 0.003))
        calls[0] += 1
        if stop is not None and stop(calls[0]):
            raise Killed()
        if kind == "structured":
            assert isinstance(about, type)
            return STRUCTURED.get(about.__name__, {})
        if kind != "choose":
            return "find the key, then open the chest"
        assert isinstance(about, list)
        if "take key" in about:
            return "take key"
        if "open chest" in about and "take key" in _DONE.findall(prompt):
            return "open chest"
        digest = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
        options = [str(o) for o in about]
        tools = sorted(o for o in options if o.startswith("use tool "))
        if tools and digest % 3 == 0:
            return tools[digest % len(tools)]
        moves = sorted(o for o in options if o.startswith("go ")) or sorted(options)
        return moves[digest % len(moves)]

    return ScriptedLLM(responder=respond)


class Site:
    """In-memory arm state that outlives a run, like a persistent store: a resumed run
    reopens what the killed one wrote."""

    def __init__(self, *, jitter: bool = False, stop: Stop | None = None) -> None:
        self.states: dict[str, ArmState] = {}
        self.jitter = jitter
        self.stop = stop

    def backends(self) -> Backends:
        def open_state(settings: Settings, state_dir: Path) -> ArmState:
            ns = settings.memory.namespace
            if ns not in self.states:
                store = MemoryStore.in_memory(HashingEmbedder(), namespace=ns)
                self.states[ns] = ArmState(store, Toolsmith(InProcessToolRegistry(store.embedder)))
            return self.states[ns]

        def make_llm(settings: Settings) -> LLMClient:
            worker = settings.checkpoint_path.stem

            def stop(call: int) -> bool:
                return self.stop is not None and self.stop(worker, call)

            return policy(jitter=self.jitter, stop=stop)

        return Backends(open_state, make_llm)

    def snapshot(self) -> dict[str, Any]:
        """Everything learned, per arm, without random ids and clock times."""
        return {
            ns: {
                "memory": sorted(
                    (json.dumps(_norm(row), sort_keys=True) for row in st.memory.export()),
                ),
                "tools": [
                    json.dumps(_norm(t.model_dump(exclude={"feedback"})), sort_keys=True)
                    for t in st.toolsmith.registry.list_tools()
                ],
            }
            for ns, st in sorted(self.states.items())
        }


_RANDOM_ID = re.compile(r"^(ep|act|note|exp)-[0-9a-f]{12}$")
_CLOCK = {"at", "created_at", "updated_at", "id"}


def _norm(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items() if k not in _CLOCK}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, str) and _RANDOM_ID.match(value):
        return "<id>"
    if isinstance(value, float):
        return round(value, 9)
    return value


FIELDS = (
    "seed",
    "success",
    "score",
    "steps",
    "actions",
    "tokens",
    "prompt_tokens",
    "completion_tokens",
    "tools_used",
    "tools_written",
    "memory_stats",
    "stop_reason",
)


def outcome(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Per episode, everything but times and random memory ids."""
    return {
        (r["arm"], r["repeat"], r["phase"], r["index"]): {
            **{f: r[f] for f in FIELDS},
            "written": sorted(Counter(i.split("-")[0] for i in r["memories_written"]).items()),
            "used": len(r["memories_used"]),
        }
        for r in records
    }


def bench(out: Path, site: Site, home: Path, **kw: Any) -> list[dict[str, Any]]:
    args: dict[str, Any] = {"arms": "full", "train_seeds": "0-7", **kw}
    return run_bench(spec(out, **args), base(home), backends=site.backends(), console=quiet())


@pytest.fixture(autouse=True)
def _isolated(evolvent_home: Path) -> None:
    """No EVOLVENT_* variable of the caller leaks into the settings."""


# -- the agent: play now, learn later ---------------------------------------------------


def agent_on(home: Path, site_states: dict[str, Any], name: str) -> Agent:
    settings = base(home / name)
    settings.memory.notebook_batch = 2
    settings.memory.distill_every = 2
    store = MemoryStore.in_memory(HashingEmbedder(), namespace=name)
    tools = Toolsmith(InProcessToolRegistry(store.embedder))
    site_states[name] = ArmState(store, tools)
    return Agent(settings, llm=policy(), memory=store, toolsmith=tools, embedder=store.embedder)


def test_play_writes_nothing_and_learn_from_makes_the_writes_of_run(tmp_path: Path) -> None:
    site = Site()
    inline = agent_on(tmp_path, site.states, "inline")
    deferred = agent_on(tmp_path, site.states, "deferred")
    seeds = list(range(12))
    ran = [inline.run("toy:keys", seed=s, thread_id=f"t{s}", max_steps=6) for s in seeds]
    learned = []
    for s in seeds:
        st = site.states["deferred"]
        before = site.snapshot()["deferred"]
        played = deferred.play("toy:keys", seed=s, thread_id=f"t{s}", max_steps=6)
        assert site.snapshot()["deferred"] == before, "play() wrote something"
        assert played.result().memories_written == [] and played.result().tools_written == []
        # The payload survives JSON (it is saved to disk and sent to Ray workers).
        again = PlayedEpisode.model_validate_json(played.model_dump_json())
        learned.append(deferred.learn_from(again))
        assert st.memory.stats()["episode"] > 0
    keys = ("success", "score", "steps", "actions", "tokens", "tools_used", "tools_written")
    assert [r.model_dump(include=set(keys)) for r in learned] == [
        r.model_dump(include=set(keys)) for r in ran
    ]
    assert [len(r.memories_written) for r in learned] == [len(r.memories_written) for r in ran]
    snap = site.snapshot()
    assert snap["deferred"] == snap["inline"]
    # The scenario is not trivial: it wins and loses, distills experiences, mines tools and
    # uses them, and gates a mistake-notebook update (here rolled back) in both agents.
    assert {r.success for r in ran} == {True, False}
    stats = site.states["inline"].memory.stats()
    assert stats["episode"] and stats["value"] and stats["experience"]
    assert any(r.tools_used for r in ran) and any(r.tools_written for r in ran)
    a, b = inline.last_notebook_update, deferred.last_notebook_update
    assert a is not None and b is not None
    assert (a.kept, a.old_outcomes, a.new_outcomes) == (b.kept, b.old_outcomes, b.new_outcomes)


def test_resume_play_keeps_the_tool_feedback_of_a_killed_episode(tmp_path: Path) -> None:
    site = Site()
    agent = agent_on(tmp_path, site.states, "a")
    for s in range(6):  # learn some tools first
        agent.learn_from(agent.play("toy:keys", seed=s, thread_id=f"warm{s}", max_steps=6))
    assert agent.toolsmith.registry.list_tools()
    # The first game whose episode calls a tool (which one depends on the scripted policy's
    # hash of the prompt); play() learns nothing, so trying games leaves the agent as it was.
    plays = (
        (s, agent.play("toy:keys", seed=s, thread_id=f"whole{s}", max_steps=6))
        for s in range(7, 30)
    )
    seed, whole = next(((s, p) for s, p in plays if p.tool_uses), (None, None))
    assert seed is not None and whole is not None, "the scenario must use a tool"
    journal = tool_journal(agent.settings.checkpoint_path, "cut")

    def die_after_first_tool(call: int) -> bool:
        return journal.is_file() and '"use"' in journal.read_text()

    agent.llm = policy(stop=die_after_first_tool)
    with pytest.raises(Killed):
        agent.play("toy:keys", seed=seed, thread_id="cut", max_steps=6)
    cut = agent.checkpoints.episode("cut")
    assert cut is not None and cut.status == "running"  # died half-way
    agent.llm = policy()
    resumed = agent.resume_play("cut")
    assert [u.name for u in resumed.tool_uses] == [u.name for u in whole.tool_uses]
    assert resumed.tool_offers == whole.tool_offers
    actions = [s.action for s in resumed.result().trajectory]
    assert actions == [s.action for s in whole.result().trajectory]


def test_an_offer_repeated_by_a_resumed_step_counts_once(tmp_path: Path) -> None:
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()))
    smith.registry.register(
        Tool(name="fetch_key", kind="macro", doc="Fetch the key.", steps=["go east", "take key"])
    )
    journal = tmp_path / "t.jsonl"
    rec = ToolUseRecorder(smith, journal)
    assert rec.offer("fetch the key", ["go east"], step=0) and rec.offers == 1
    rec.offer("fetch the key", ["go east"], step=3)
    # Killed after step 3 offered, before its checkpoint: on resume step 3 offers again.
    again = ToolUseRecorder(smith, journal)
    assert again.offers == 2
    again.offer("fetch the key", ["go east"], step=3)
    assert again.offers == 2 and ToolUseRecorder(smith, journal).offers == 2
    # Nothing offered (no tool can run): nothing counted; offers without a step count each.
    assert again.offer("fetch the key", ["look"], step=4) == [] and again.offers == 2
    journal.open("a", encoding="utf-8").write(json.dumps({"offer": True}) + "\n")
    assert ToolUseRecorder(smith, journal).offers == 3


# -- the harness ------------------------------------------------------------------------


def test_batches_do_not_depend_on_thread_timing(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        site = Site(jitter=True)
        records = bench(tmp_path / name, site, tmp_path / f"h{name}", concurrency=4)
        runs.append((outcome(records), site.snapshot()))
    (one, mem1), (two, mem2) = runs
    assert len(one) == 3 + 8 + 3
    assert one == two
    assert mem1 == mem2
    # Four workers really played at once, each checkpointing into its batch slot's file.
    slots = sorted(
        p.name for p in (tmp_path / "a" / "state" / "r0" / "full").glob("train-w*.sqlite")
    )
    assert slots == [f"train-w{i}.sqlite" for i in range(4)]
    train = [v for k, v in sorted(one.items()) if k[2] == "train"]
    # Batch-synchronous: the first batch sees an empty memory, the second what it learned.
    assert all(t["used"] == 0 for t in train[:4])
    assert any(t["used"] > 0 for t in train[4:])
    assert len({t["steps"] for t in train}) > 1  # outcomes differ between seeds
    # Learning is applied, and logged, in task order within each batch.
    logged = [json.loads(x) for x in (tmp_path / "a" / "episodes.jsonl").read_text().splitlines()]
    assert [r["index"] for r in logged if r["phase"] == "train"] == list(range(8))
    recorded = [t["memory_stats"]["value"] for t in train]
    assert recorded == sorted(recorded) and recorded[0] < recorded[3]
    assert not (tmp_path / "a" / "pending").exists() or not any(
        (tmp_path / "a" / "pending").iterdir()
    )


class OneByOne(BenchSpec):
    """The batch machinery with batches of one episode (not reachable from the CLI)."""

    @property
    def batched(self) -> bool:
        return True


def test_concurrency_one_is_the_stream(tmp_path: Path) -> None:
    stream_site, batch_site = Site(), Site()
    stream = bench(tmp_path / "stream", stream_site, tmp_path / "h1")
    s = spec(tmp_path / "ones", arms="full", train_seeds="0-7")
    ones = run_bench(
        OneByOne.model_validate(s.model_dump()),
        base(tmp_path / "h2"),
        backends=batch_site.backends(),
        console=quiet(),
    )
    assert outcome(stream) == outcome(ones)
    assert stream_site.snapshot() == batch_site.snapshot()
    # The stream learns as it goes: the second training episode already uses memory.
    train = [r for r in stream if r["phase"] == "train"]
    assert train[1]["memories_used"]
    assert not (tmp_path / "stream" / "pending").exists()
    # N=4 is another schedule: the second episode sees nothing yet.
    four = bench(tmp_path / "four", Site(), tmp_path / "h3", concurrency=4)
    assert not [r for r in four if r["phase"] == "train"][1]["memories_used"]
    assert outcome(four) != outcome(stream)


class Calls:
    """Counts ``Agent.play`` / ``resume_play`` / ``learn_from`` per thread id."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.played: Counter[str] = Counter()
        self.resumed: Counter[str] = Counter()
        self.learned: Counter[str] = Counter()
        lock = threading.Lock()
        play, resume_play, learn_from = Agent.play, Agent.resume_play, Agent.learn_from

        def counted_play(agent: Agent, *a: Any, **kw: Any) -> PlayedEpisode:
            with lock:
                self.played[kw["thread_id"]] += 1
            return play(agent, *a, **kw)

        def counted_resume(agent: Agent, thread_id: str, *a: Any) -> PlayedEpisode:
            with lock:
                self.resumed[thread_id] += 1
            return resume_play(agent, thread_id, *a)

        def counted_learn(agent: Agent, played: PlayedEpisode) -> Any:
            self.learned[played.thread_id] += 1
            return learn_from(agent, played)

        monkeypatch.setattr(Agent, "play", counted_play)
        monkeypatch.setattr(Agent, "resume_play", counted_resume)
        monkeypatch.setattr(Agent, "learn_from", counted_learn)


ARMS = "episodic,tools"  # no between-episode buffers (notes, experiences): those live in
# the learner process and, as in the stream, are not restored after a kill


def test_resume_after_a_kill_while_learning_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_site = Site()
    clean = bench(tmp_path / "clean", clean_site, tmp_path / "h0", arms=ARMS, concurrency=4)
    calls = Calls(monkeypatch)
    site = Site()
    out = tmp_path / "out"
    append = EpisodeLog.append
    logged = {"n": 0}

    def append_then_die(log: EpisodeLog, record: dict[str, Any]) -> None:
        append(log, record)
        logged["n"] += 1
        if logged["n"] == 3 + 4 + 1:  # pre, train batch 0, the first of train batch 1
            raise Killed()

    monkeypatch.setattr(EpisodeLog, "append", append_then_die)
    with pytest.raises(Killed):
        bench(out, site, tmp_path / "h1", arms=ARMS, concurrency=4)
    monkeypatch.setattr(EpisodeLog, "append", append)
    # Batch 1 was played whole; its first episode is learned and logged, the rest wait.
    pending = sorted(p.name for p in (out / "pending").glob("*.json"))
    assert "episodic-r0-train-4.json" in pending  # logged, not yet dropped: stale
    assert {f"episodic-r0-train-{i}.json" for i in (5, 6, 7)} <= set(pending)
    resumed = bench(out, site, tmp_path / "h1", arms=ARMS, concurrency=4)
    assert outcome(resumed) == outcome(clean)
    assert site.snapshot() == clean_site.snapshot()
    train = [f"{a}-r0-train-{i}" for a in ARMS.split(",") for i in range(8)]
    assert all(calls.learned[t] == 1 for t in train), calls.learned
    assert all(calls.played[t] == 1 for t in train), calls.played  # none played twice
    assert not calls.resumed
    assert not list((out / "pending").glob("*.json"))
    assert len(EpisodeLog(out / "episodes.jsonl").load()) == 2 * (3 + 8 + 3)


def test_resume_after_a_kill_while_playing_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean_site = Site()
    clean = bench(tmp_path / "clean", clean_site, tmp_path / "h0", arms="tools", concurrency=4)
    calls = Calls(monkeypatch)
    out = tmp_path / "out"
    log = out / "episodes.jsonl"
    pending = out / "pending"

    first_call: dict[str, int] = {}

    def batch_1_half_played(worker: str, call: int) -> bool:
        """Slot 0 plays its episode of training batch 1 to the end; the other slots plan,
        take two steps, wait for slot 0's episode to be saved, then die half-way."""
        batch_0_logged = log.is_file() and len(log.read_text().splitlines()) >= 3 + 4
        if worker == "train-w0" or not worker.startswith("train-") or not batch_0_logged:
            return False
        if call - first_call.setdefault(worker, call) < 3:
            return False
        deadline = time.monotonic() + 30
        while not any(pending.glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.005)
        return True

    site = Site(jitter=True, stop=batch_1_half_played)
    with pytest.raises(Killed):
        bench(out, site, tmp_path / "h1", arms="tools", concurrency=4)
    saved = {p.stem for p in pending.glob("*.json")}
    assert saved == {"tools-r0-train-4"}
    for slot in (1, 2, 3):  # killed half-way: their checkpoints hold the plan and two steps
        db = out / "state" / "r0" / "tools" / f"train-w{slot}.sqlite"
        settings = with_overrides(base(tmp_path / "peek"), {"checkpoint_db": db})
        store = MemoryStore.in_memory(HashingEmbedder())
        tools = Toolsmith(InProcessToolRegistry(store.embedder))
        with Agent(settings, llm=policy(), memory=store, toolsmith=tools) as peek:
            t = f"tools-r0-train-{4 + slot}"
            row = peek.checkpoints.episode(t)
            assert row is not None and row.status == "running"
            assert (
                peek.graph.get_state({"configurable": {"thread_id": t}}).values["step_count"] == 2
            )
    site.stop = None
    resumed = bench(out, site, tmp_path / "h1", arms="tools", concurrency=4)
    batch1 = {f"tools-r0-train-{i}" for i in range(4, 8)}
    assert outcome(resumed) == outcome(clean)
    assert site.snapshot() == clean_site.snapshot()
    # Saved episodes were learned from, not played again; killed ones were finished.
    assert all(calls.played[t] == 1 for t in saved)
    assert all(calls.resumed[t] == 1 and calls.played[t] == 1 for t in batch1 - saved)
    assert all(calls.learned[t] == 1 for t in batch1)


def test_a_resume_must_keep_the_schedule(tmp_path: Path) -> None:
    out = tmp_path / "out"
    bench(out, Site(), tmp_path / "h", arms="frozen", train_seeds="0-1", concurrency=2)
    with pytest.raises(BenchSpecError, match="started with --executor thread --concurrency 2"):
        bench(out, Site(), tmp_path / "h", arms="frozen", train_seeds="0-1", concurrency=3)
    with pytest.raises(BenchSpecError, match="--ray-address needs --executor ray"):
        spec(out, ray_address="auto")
    with pytest.raises(BenchSpecError, match="unknown executor 'dask'"):
        spec(out, executor="dask")


def test_a_resume_must_play_the_same_episodes(tmp_path: Path) -> None:
    """Records are matched by (arm, repeat, phase, index): another environment, other seeds
    or another step limit in the same --out would be reported as if they had been played."""
    out = tmp_path / "out"
    first = bench(out, Site(), tmp_path / "h", arms="frozen", train_seeds="0-1")
    assert len(first) == 2 + 2 * 3
    was = "--env toy:keys --train-seeds 0-1 --test-seeds 100-102 --max-steps 6"
    changes: list[tuple[dict[str, Any], str]] = [
        ({"env": "textworld:coin_collector"}, "--env textworld:coin_collector --train"),
        ({"train_seeds": "0-2"}, "--train-seeds 0-2 --test-seeds"),
        ({"test_seeds": "100-101,105"}, "--test-seeds 100-101,105 --max-steps"),
        ({"max_steps": 7}, "--test-seeds 100-102 --max-steps 7"),
    ]
    for change, now in changes:
        with pytest.raises(BenchSpecError, match=f"started with {was}, not .*{now}"):
            bench(out, Site(), tmp_path / "h", **{"arms": "frozen", "train_seeds": "0-1", **change})
    # Arms and repeats may be added; the episodes played are kept.
    more = bench(out, Site(), tmp_path / "h", arms="frozen,episodic", train_seeds="0-1")
    assert len(more) == 2 * len(first)
    # A folder from before bench.json kept the options: its records are checked instead.
    info = json.loads((out / "bench.json").read_text())
    (out / "bench.json").write_text(json.dumps({k: info[k] for k in ("executor", "concurrency")}))
    with pytest.raises(
        BenchSpecError,
        match="r0-train-0 played toy:keys seed 0, where this run plays toy:keys seed 5",
    ):
        bench(out, Site(), tmp_path / "h", arms="frozen", train_seeds="5-6")
    assert len(bench(out, Site(), tmp_path / "h", arms="frozen", train_seeds="0-1")) == len(more)
    assert json.loads((out / "bench.json").read_text())["train_seeds"] == [0, 1]


def test_a_run_that_recorded_nothing_may_start_again_with_other_options(tmp_path: Path) -> None:
    """A run that failed before its first episode ended (an LLM not reachable, a kill) left
    bench.json behind: a rerun that fixes an option is a new run, not a refused resume."""
    out = tmp_path / "out"
    with pytest.raises(Killed):  # the first episode dies at its first LLM call
        bench(out, Site(stop=lambda worker, call: call == 1), tmp_path / "h", arms="frozen")
    assert not EpisodeLog(out / "episodes.jsonl").load()  # those queued were not started
    assert list((out / "state").rglob("pre-w0.sqlite"))  # the first episode's checkpoints
    again = bench(out, Site(), tmp_path / "h", arms="frozen", test_seeds="200-202")
    # The half-played episode of seed 100 was not resumed as the new run's first one.
    assert [(r["phase"], r["seed"]) for r in again if r["phase"] != "train"] == [
        *(("pre", s) for s in (200, 201, 202)),
        *(("post", s) for s in (200, 201, 202)),
    ]
    assert json.loads((out / "bench.json").read_text())["test_seeds"] == [200, 201, 202]
    # Once an episode is recorded, the options are the run's.
    with pytest.raises(BenchSpecError, match=r"started with .*--test-seeds 200-202"):
        bench(out, Site(), tmp_path / "h", arms="frozen", test_seeds="100-102")


def test_bench_command_rejects_bad_executor_options(tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(bench_command)
    app.command("other")(lambda: None)  # two commands: typer keeps `bench` as a subcommand
    runner = CliRunner()
    r = runner.invoke(app, ["bench", "--env", "toy:keys", "--executor", "dask"])
    assert r.exit_code == 2 and "unknown executor 'dask'; valid: thread, ray" in r.output
    r = runner.invoke(app, ["bench", "--env", "toy:keys", "--ray-address", "auto"])
    assert r.exit_code == 2 and "--ray-address needs --executor ray" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(app, ["bench", "--help"])
    assert "batches of N consecutive episodes" in " ".join(r.output.split())


def test_an_out_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    """As root only /sys and the like refuse a write: the OS's answer is faked here."""
    from benchmarks.harness import records

    def refused(path: Path, text: str) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    app = typer.Typer()
    app.command()(bench_command)
    app.command("other")(lambda: None)
    out = tmp_path / "out"
    args = ["bench", "--env", "toy:keys", "--train-seeds", "0", "--out", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(records, "_write_atomic", refused)
        r = CliRunner().invoke(app, args)
    assert r.exit_code == 2, r.output
    assert f"cannot write in --out {out}: Permission denied" in r.output
    assert "Traceback" not in r.output


def test_a_new_run_never_writes_into_a_folder_of_other_files(tmp_path: Path) -> None:
    """The report's files and the arms' state would overwrite or mix with the user's."""
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "report.md").write_text("my notes")
    (theirs / "state").mkdir()
    with pytest.raises(BenchSpecError, match=r"holds files that are not a benchmark's \(report"):
        bench(theirs, Site(), tmp_path / "h", arms="frozen", train_seeds="0-1")
    assert (theirs / "report.md").read_text() == "my notes"
    assert sorted(p.name for p in theirs.iterdir()) == ["report.md", "state"]
    # An empty folder is a new run's; so is one that a run was killed in before any episode
    # ended (bench.json is written first), and one from before bench.json (episodes.jsonl).
    empty = tmp_path / "empty"
    empty.mkdir()
    assert len(bench(empty, Site(), tmp_path / "h2", arms="frozen", train_seeds="0-1")) == 8
    (empty / "episodes.jsonl").unlink()
    assert len(bench(empty, Site(), tmp_path / "h2", arms="frozen", train_seeds="0-1")) == 8
