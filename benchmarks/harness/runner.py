"""Run a ``BenchSpec``: per repeat and arm, held-out seeds frozen, the stream, held-out again.

Every episode is appended to ``OUT/episodes.jsonl`` as soon as it ends; a restart with the
same ``OUT`` skips the episodes already there, and an episode killed half-way is resumed from
its checkpoint (training episodes learn from it as if nothing had happened).

Concurrency is *batch-synchronous*: only the frozen phases (``pre``, ``post``) run several
episodes at once, each worker thread with its own agent and LLM client (they share the
server, the arm's memory and tools, which frozen episodes only read). The training stream
is always one episode after another, so what an arm learns — and in what order — never
depends on thread timing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from agent.agent import Agent
from agent.config import Settings
from agent.llm.base import LLMClient
from agent.result import EpisodeResult
from benchmarks.harness.arms import arm_settings, frozen, with_overrides
from benchmarks.harness.spec import PHASES, BenchSpec
from memory.embeddings import Embedder, default_embedder
from memory.store import MemoryStore
from toolsmith.synthesizer import Toolsmith

EPISODES_FILE = "episodes.jsonl"
EpisodeKey = tuple[str, int, str, int]
"""``(arm, repeat, phase, index)``: one episode of a benchmark."""


def key_of(record: dict[str, Any]) -> EpisodeKey:
    return (str(record["arm"]), int(record["repeat"]), str(record["phase"]), int(record["index"]))


class EpisodeLog:
    """``episodes.jsonl``: one JSON object per finished episode, appended and flushed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> dict[EpisodeKey, dict[str, Any]]:
        """Episodes already recorded; a line cut short by a kill is ignored."""
        done: dict[EpisodeKey, dict[str, Any]] = {}
        if not self.path.is_file():
            return done
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                done[key_of(record)] = record
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
        return done

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+", encoding="utf-8") as f:
                # A killed writer may have left a line without its newline: start afresh.
                f.seek(0, 2)
                if f.tell():
                    f.seek(f.tell() - 1)
                    if f.read(1) != "\n":
                        f.write("\n")
                f.write(line + "\n")
                f.flush()


@dataclass
class ArmState:
    """What one arm learns in one repeat: its memory store and its tools."""

    memory: MemoryStore
    toolsmith: Toolsmith
    closers: list[Callable[[], None]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        stats = dict(self.memory.stats())
        stats["tool"] = len(self.toolsmith.registry.list_tools())
        return stats

    def close(self) -> None:
        for close in self.closers:
            close()


OpenState = Callable[[Settings, Path], ArmState]
"""``(arm settings, state dir) -> ArmState``: open (or reopen, on resume) an arm's state."""
MakeLLM = Callable[[Settings], LLMClient]
"""A fresh LLM client per worker; clients share the server, never each other."""


@dataclass
class Backends:
    """How the runner gets state and LLM clients; tests inject in-memory fakes."""

    open_state: OpenState
    make_llm: MakeLLM


def default_backends() -> Backends:
    """Persistent Chroma memory + SQLite tools per arm, and ``make_client`` per worker."""
    embedder: list[Embedder] = []
    lock = threading.Lock()

    def shared_embedder() -> Embedder:
        with lock:  # one embedding model for all arms
            if not embedder:
                embedder.append(default_embedder())
            return embedder[0]

    def open_state(settings: Settings, state_dir: Path) -> ArmState:
        from toolsmith.sqlite_registry import SqliteToolRegistry

        emb = shared_embedder()
        mcfg = settings.memory
        store = MemoryStore.open(
            path=None if mcfg.url else settings.memory_path,
            url=mcfg.url,
            namespace=mcfg.namespace,
            embedder=emb,
        )
        registry = SqliteToolRegistry(state_dir / "tools.sqlite", emb, mcfg.namespace)
        return ArmState(store, Toolsmith(registry), [registry.close, store.close])

    def make_llm(settings: Settings) -> LLMClient:
        from agent.llm.factory import make_client

        return make_client(settings.llm)[0]

    return Backends(open_state, make_llm)


@dataclass
class _Job:
    phase: str
    index: int
    seed: int


class BenchRunner:
    """Plays a ``BenchSpec`` into ``spec.out``; ``run()`` returns every record."""

    def __init__(
        self,
        spec: BenchSpec,
        base: Settings,
        *,
        backends: Backends | None = None,
        console: Console | None = None,
    ) -> None:
        self.spec = spec
        self.base = base
        self.backends = backends or default_backends()
        self.console = console or Console(stderr=True)
        self.log = EpisodeLog(spec.out / EPISODES_FILE)
        self.records = self.log.load()
        self._progress: Progress | None = None
        self._bar: TaskID | None = None

    def jobs(self, repeat: int, phase: str) -> list[_Job]:
        seeds = self.spec.stream(repeat) if phase == "train" else self.spec.test_seeds
        return [_Job(phase, i, s) for i, s in enumerate(seeds)]

    def total(self) -> int:
        s = self.spec
        return s.repeats * len(s.arms) * (len(s.train_seeds) + 2 * len(s.test_seeds))

    def run(self) -> list[dict[str, Any]]:
        self.spec.out.mkdir(parents=True, exist_ok=True)
        self._prepare_games()
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
        )
        with progress:
            self._progress = progress
            self._bar = progress.add_task("benchmark", total=self.total(), completed=0)
            progress.update(self._bar, completed=len(self._wanted_done()))
            for repeat in range(self.spec.repeats):
                for arm in self.spec.arms:
                    self._run_arm(arm, repeat)
        return [self.records[k] for k in sorted(self.records, key=_order)]

    def _wanted_done(self) -> set[EpisodeKey]:
        s = self.spec
        wanted = {
            (arm, r, job.phase, job.index)
            for r in range(s.repeats)
            for arm in s.arms
            for phase in PHASES
            for job in self.jobs(r, phase)
        }
        return wanted & set(self.records)

    def _prepare_games(self) -> None:
        from benchmarks.envs.registry import pregenerate

        seeds = [*self.spec.train_seeds, *self.spec.test_seeds]
        with self.console.status(f"preparing {self.spec.env} games"):
            pregenerate(self.spec.env, seeds, self.base.games_path)

    def _run_arm(self, arm: str, repeat: int) -> None:
        todo = {
            phase: [
                j
                for j in self.jobs(repeat, phase)
                if (arm, repeat, phase, j.index) not in self.records
            ]
            for phase in PHASES
        }
        if not any(todo.values()):
            return
        state_dir = self.spec.out / "state" / f"r{repeat}" / arm
        settings = arm_settings(self.base, arm, state_dir, repeat)
        state = self.backends.open_state(settings, state_dir)
        try:
            for phase in PHASES:
                if not todo[phase]:
                    continue
                self._describe(f"{arm} r{repeat} {phase}")
                if phase == "train":
                    self._train(arm, repeat, settings, state, todo[phase])
                else:
                    self._frozen(arm, repeat, phase, frozen(settings), state, todo[phase])
        finally:
            state.close()

    def _open_agent(
        self, settings: Settings, state: ArmState, db: Path
    ) -> tuple[Agent, Callable[[], None]]:
        """An agent on the arm's state with its own LLM client and checkpoint file."""
        llm = self.backends.make_llm(settings)
        s = with_overrides(settings, {"checkpoint_db": db})
        agent = Agent(
            s,
            llm=llm,
            memory=state.memory,
            toolsmith=state.toolsmith,
            embedder=state.memory.embedder,
        )

        def close() -> None:
            agent.close()
            llm.close()

        return agent, close

    def _train(
        self, arm: str, repeat: int, settings: Settings, state: ArmState, jobs: list[_Job]
    ) -> None:
        agent, close = self._open_agent(settings, state, settings.checkpoint_path)
        try:
            for job in jobs:
                self._play(agent, arm, repeat, job, state)
        finally:
            close()

    def _frozen(
        self,
        arm: str,
        repeat: int,
        phase: str,
        settings: Settings,
        state: ArmState,
        jobs: list[_Job],
    ) -> None:
        local = threading.local()
        closers: list[Callable[[], None]] = []
        lock = threading.Lock()

        def worker_agent() -> Agent:
            agent: Agent | None = getattr(local, "agent", None)
            if agent is None:
                with lock:  # worker n checkpoints into its own file: no SQLite contention
                    db = settings.checkpoint_path.with_name(f"{phase}-w{len(closers)}.sqlite")
                    agent, close = self._open_agent(settings, state, db)
                    closers.append(close)
                local.agent = agent
            return agent

        def play(job: _Job) -> None:
            self._play(worker_agent(), arm, repeat, job, state)

        try:
            with ThreadPoolExecutor(self.spec.concurrency, thread_name_prefix="bench") as pool:
                for future in [pool.submit(play, j) for j in jobs]:
                    future.result()
        finally:
            for close in closers:
                close()

    def _play(self, agent: Agent, arm: str, repeat: int, job: _Job, state: ArmState) -> None:
        tid = f"{arm}-r{repeat}-{job.phase}-{job.index}"
        result: EpisodeResult
        if agent.has_checkpoint(tid):
            result = agent.resume(tid)  # killed half-way (or just before it was recorded)
        else:
            result = agent.run(
                self.spec.env,
                seed=job.seed,
                thread_id=tid,
                max_steps=self.spec.max_steps,
                run_id=f"{arm}-r{repeat}-{job.phase}",
                index=job.index,
            )
        record: dict[str, Any] = {
            "arm": arm,
            "repeat": repeat,
            "phase": job.phase,
            "index": job.index,
            **result.summary(),
            "memory_stats": state.counts(),
        }
        self.log.append(record)
        self.records[key_of(record)] = record
        if self._progress is not None and self._bar is not None:
            self._progress.advance(self._bar)

    def _describe(self, text: str) -> None:
        if self._progress is not None and self._bar is not None:
            self._progress.update(self._bar, description=text)


def _order(k: EpisodeKey) -> tuple[int, str, int, int]:
    arm, repeat, phase, index = k
    return (repeat, arm, PHASES.index(phase), index)


def run_bench(
    spec: BenchSpec,
    base: Settings,
    *,
    backends: Backends | None = None,
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Play ``spec`` (resuming what ``spec.out`` already holds); returns all its records."""
    return BenchRunner(spec, base, backends=backends, console=console).run()
