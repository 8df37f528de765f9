"""Run a ``BenchSpec``: per repeat and arm, held-out seeds frozen, the stream, held-out again.

Schedule — what an arm learns, and when
---------------------------------------
With the thread executor and ``--concurrency 1`` (the default) every phase is the classic
stream: one episode after another, each learning as it ends (memory writes in the reflector
node, tool mining in the tool-synthesizer, mistake notes and experiences between episodes).

Otherwise (``--concurrency N`` above 1, or ``--executor ray``) every phase is cut into
batches of N consecutive episodes — positions ``b·N … b·N+N−1`` of the phase, so batches do
not move when a run is resumed — and runs *batch-synchronously with deferred learning*:

1. the episodes of a batch play at the same time (``Agent.play``), on worker threads or as
   Ray tasks. Each reads the arm's memory and tools as they were at the end of the previous
   batch and writes nothing; ε-greedy exploration draws from the episode's own RNG, seeded
   by its thread id;
2. once all have ended, the driver applies their learning in task order
   (``Agent.learn_from``): each episode's tool-use feedback, memory writes and tool mining,
   then distillation and mistake notes — exactly the writes it would have made itself;
3. each episode is logged as soon as its learning is applied.

So what an arm learns for a fixed N never depends on thread timing or on where episodes run
(threads and Ray give the same episodes), and N = 1 on threads is exactly the stream. Frozen
phases (``pre``, ``post``) learn nothing either way; in batches their tool-use feedback still
reaches the tools at the batch end, as in the stream it does after each episode.

Resume
------
An episode is appended to ``OUT/episodes.jsonl`` once its learning is applied; a rerun with
the same ``OUT`` skips those. In a batch, each played episode is saved to ``OUT/pending/``
before any learning of the batch is applied, so after a kill mid-batch a resume learns from
the saved episodes (once each, in order, then logs them) instead of playing them again
against memory that has moved on. An episode killed half-way is resumed from its checkpoint
(threads: the file of its batch slot; Ray: played again from the start). The one window left
is a kill inside the learning of one episode (between its writes and its log line): a
resume applies that episode's writes again, as a kill inside the stream's reflector node
would.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
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
from agent.consoles import stderr_console
from agent.deferred import PlayedEpisode
from agent.episode_lines import EpisodeLines
from agent.errors import ConfigError
from agent.result import EpisodeResult
from benchmarks.harness.arms import arm_settings, frozen, with_overrides
from benchmarks.harness.backends import ArmState, Backends, default_backends
from benchmarks.harness.players import Player, PlayJob, ThreadPlayer
from benchmarks.harness.records import (
    EPISODES_FILE,
    PENDING_DIR,
    STATE_DIR,
    EpisodeKey,
    EpisodeLog,
    PendingEpisodes,
    RunInfo,
    key_name,
    key_of,
)
from benchmarks.harness.spec import PHASES, BenchSpec


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
        self.console = console or stderr_console()
        self.log = EpisodeLog(spec.out / EPISODES_FILE)
        self.pending = PendingEpisodes(spec.out / PENDING_DIR)
        self.records = self.log.load()
        self.info: RunInfo | None = None
        self._progress: Progress | None = None
        self._bar: TaskID | None = None
        self._lines: EpisodeLines | None = None

    def jobs(self, repeat: int, phase: str) -> list[_Job]:
        return [_Job(phase, i, s) for i, s in enumerate(self.spec.seeds(repeat, phase))]

    def total(self) -> int:
        s = self.spec
        return s.repeats * len(s.arms) * (len(s.train_seeds) + 2 * len(s.test_seeds))

    def run(self) -> list[dict[str, Any]]:
        out = self.spec.out
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file; give a folder (made if missing)")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot make the output folder {out}: {e.strerror or e}") from None
        try:
            self.info = RunInfo.settle(
                self.spec.out,
                self.spec,
                records=self.records,
                max_steps=self.spec.max_steps or self.base.limits.max_steps,
            )
        except OSError as e:
            raise ConfigError(f"cannot write in --out {out}: {e.strerror or e}") from None
        self.console.print(
            f"schedule: {self.spec.schedule}; executor: {self.spec.executor}", highlight=False
        )
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
        with ExitStack() as services:
            if self.spec.executor == "ray" and self._wanted_done() != self._wanted():
                self.base = self._ray_services(services)
            with progress:
                self._progress = progress
                self._bar = progress.add_task("benchmark", total=self.total(), completed=0)
                progress.update(self._bar, completed=len(self._wanted_done()))
                self._lines = EpisodeLines(self.console, self.total(), len(self._wanted_done()))
                for repeat in range(self.spec.repeats):
                    for arm in self.spec.arms:
                        self._run_arm(arm, repeat)
        return [self.records[k] for k in sorted(self.records, key=_order)]

    def _wanted(self) -> set[EpisodeKey]:
        s = self.spec
        return {
            (arm, r, job.phase, job.index)
            for r in range(s.repeats)
            for arm in s.arms
            for phase in PHASES
            for job in self.jobs(r, phase)
        }

    def _wanted_done(self) -> set[EpisodeKey]:
        return self._wanted() & set(self.records)

    def _prepare_games(self) -> None:
        from benchmarks.envs.registry import pregenerate

        seeds = [*self.spec.train_seeds, *self.spec.test_seeds]
        if not self.console.is_terminal:  # no spinner there: say why nothing else is said yet
            self.console.print(
                f"preparing the {self.spec.env} games of {len(seeds)} seeds (made once, then "
                f"read from {self.base.games_path})",
                highlight=False,
                soft_wrap=True,
            )
        with self.console.status(f"preparing {self.spec.env} games"):
            pregenerate(self.spec.env, seeds, self.base.games_path)

    def _ray_services(self, stack: ExitStack) -> Settings:
        """Ray tasks reach memory and the LLM over the network: a Chroma server (started
        here, data in ``OUT/state/chroma``, unless ``memory.url`` names one) and an endpoint
        (the embedded one, unless ``llm.base_url`` is set). Both stop when the run ends."""
        from benchmarks.harness.ray_player import ray_session
        from benchmarks.harness.services import chroma_server

        base = self.base
        if not base.memory.url:
            with self.console.status("starting a Chroma server for the Ray workers"):
                url = stack.enter_context(chroma_server(self.spec.out / STATE_DIR / "chroma"))
            base = with_overrides(base, {"memory.url": url})
        if not base.llm.base_url:
            from agent.llm.embedded import shared_server

            server = shared_server(base.llm)
            stack.callback(server.close)
            base = with_overrides(base, {"llm.base_url": server.base_url})
        with self.console.status(f"starting Ray ({self.spec.ray_address or 'local'})"):
            stack.enter_context(ray_session(self.spec.ray_address))
        return base

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
        state_dir = self.spec.out / STATE_DIR / f"r{repeat}" / arm
        tag = self.info.tag if self.info is not None and self.base.memory.url else ""
        settings = arm_settings(self.base, arm, state_dir, repeat, tag)
        state = self.backends.open_state(settings, state_dir)
        try:
            for phase in PHASES:
                if not todo[phase]:
                    continue
                self._describe(f"{arm} r{repeat} {phase}")
                phase_settings = settings if phase == "train" else frozen(settings)
                if self.spec.batched:
                    self._batched(arm, repeat, phase, phase_settings, state, state_dir)
                elif phase == "train":
                    self._train(arm, repeat, settings, state, todo[phase])
                else:
                    self._frozen(arm, repeat, phase, phase_settings, state, todo[phase])
        finally:
            state.close()

    def _open_agent(
        self, settings: Settings, state: ArmState, db: Path, *, tools_llm: bool = False
    ) -> tuple[Agent, Callable[[], None]]:
        """An agent on the arm's state with its own LLM client and checkpoint file.

        ``tools_llm``: the toolsmith rewrites docs and writes code tools with this agent's
        client (as an agent that owns its toolsmith does), not with one closed earlier."""
        s = with_overrides(settings, {"checkpoint_db": db})
        llm = self.backends.make_llm(s)
        if tools_llm:
            state.toolsmith.llm = llm
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

    # -- the stream (thread executor, concurrency 1) -------------------------------------

    def _train(
        self, arm: str, repeat: int, settings: Settings, state: ArmState, jobs: list[_Job]
    ) -> None:
        agent, close = self._open_agent(settings, state, settings.checkpoint_path, tools_llm=True)
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
                    agent, close = self._open_agent(settings, state, db, tools_llm=not closers)
                    closers.append(close)
                local.agent = agent
            return agent

        stopping = threading.Event()  # after a failure or Ctrl-C: start no more episodes

        def play(job: _Job) -> None:
            if stopping.is_set():
                return
            try:
                self._play(worker_agent(), arm, repeat, job, state)
            except BaseException:
                stopping.set()
                raise

        pool = ThreadPoolExecutor(self.spec.concurrency, thread_name_prefix="bench")
        try:
            for future in [pool.submit(play, j) for j in jobs]:
                future.result()
        finally:
            stopping.set()  # those in play run to their end and are recorded
            pool.shutdown(wait=True, cancel_futures=True)
            for close in closers:
                close()

    def _play(self, agent: Agent, arm: str, repeat: int, job: _Job, state: ArmState) -> None:
        tid = key_name((arm, repeat, job.phase, job.index))
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
        self._record(arm, repeat, job, result, state)

    # -- batches with deferred learning (concurrency > 1, or Ray) -------------------------

    def _batched(
        self,
        arm: str,
        repeat: int,
        phase: str,
        settings: Settings,
        state: ArmState,
        state_dir: Path,
    ) -> None:
        jobs = self.jobs(repeat, phase)  # all of them: batch bounds never move on resume
        n = self.spec.concurrency
        learner, close_learner = self._open_agent(
            settings, state, settings.checkpoint_path, tools_llm=True
        )
        try:
            with self._player(settings, state, state_dir, phase) as player:
                for b in range(0, len(jobs), n):
                    batch = []
                    for job in jobs[b : b + n]:
                        if self._key(arm, repeat, job) in self.records:
                            self.pending.drop(self._key(arm, repeat, job))  # logged: stale
                        else:
                            batch.append(job)
                    if not batch:
                        continue
                    self._describe(
                        f"{arm} r{repeat} {phase} batch {b // n + 1}/{math.ceil(len(jobs) / n)}"
                    )
                    played = self._play_batch(arm, repeat, batch, player, b)
                    for job in batch:  # task order
                        result = learner.learn_from(played[job.index])
                        self._record(arm, repeat, job, result, state)
                        self.pending.drop(self._key(arm, repeat, job))
        finally:
            close_learner()

    @contextmanager
    def _player(
        self, settings: Settings, state: ArmState, state_dir: Path, phase: str
    ) -> Iterator[Player]:
        player: Player
        if self.spec.executor == "ray":
            from benchmarks.harness.ray_player import RayPlayer

            if getattr(state.memory.backend, "location", None) != settings.memory.url:
                raise ConfigError(
                    "the Ray executor needs each arm's memory on the Chroma server at "
                    f"memory.url ({settings.memory.url}), where its workers read it"
                )
            player = RayPlayer(settings, state.toolsmith, state.memory.embedder.name)
        else:
            player = ThreadPlayer(
                lambda db: self._open_agent(settings, state, db),
                lambda slot: state_dir / f"{phase}-w{slot}.sqlite",
                self.spec.concurrency,
            )
        try:
            yield player
        finally:
            player.close()

    def _play_batch(
        self, arm: str, repeat: int, batch: list[_Job], player: Player, first: int
    ) -> dict[int, PlayedEpisode]:
        """Every episode of ``batch`` played (or loaded from ``OUT/pending``), by index."""
        played: dict[int, PlayedEpisode] = {}
        to_play: list[PlayJob] = []
        for job in batch:
            key = self._key(arm, repeat, job)
            saved = self.pending.load(key)
            if saved is not None:
                played[job.index] = saved
                continue
            to_play.append(
                PlayJob(
                    thread_id=key_name(key),
                    env=self.spec.env,
                    seed=job.seed,
                    index=job.index,
                    run_id=f"{arm}-r{repeat}-{job.phase}",
                    max_steps=self.spec.max_steps,
                    slot=job.index - first,
                )
            )
        by_thread = {j.thread_id: j for j in to_play}
        for episode in player.play(to_play):
            job_spec = by_thread[episode.thread_id]
            self.pending.save((arm, repeat, batch[0].phase, job_spec.index), episode)
            played[job_spec.index] = episode
        return played

    # -- bookkeeping -----------------------------------------------------------------------

    @staticmethod
    def _key(arm: str, repeat: int, job: _Job) -> EpisodeKey:
        return (arm, repeat, job.phase, job.index)

    def _record(
        self, arm: str, repeat: int, job: _Job, result: EpisodeResult, state: ArmState
    ) -> None:
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
        if self._lines is not None:
            self._lines.finished(
                f"{arm} r{repeat} {job.phase} {job.index} (seed {job.seed})", result
            )

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
