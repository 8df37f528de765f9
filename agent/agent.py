"""``Agent``: the Python API. Plays tasks through the graph and learns from them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.types import StreamMode

from agent.checkpoint import CheckpointStore, EpisodeRow
from agent.config import Settings, load_settings
from agent.deferred import (
    PlayedEpisode,
    ToolUseRecorder,
    apply_learning,
    exploring_view,
    tool_journal,
)
from agent.errors import ConfigError, EvolventError, ResumeError
from agent.graph import CompiledAgent, build_graph, recursion_limit
from agent.heap import settle_once
from agent.llm.base import LLMClient
from agent.nodes.reflector import success_of
from agent.result import EpisodeResult, StepView
from agent.state import AgentState, EpisodeContext
from agent.stores import open_memory
from agent.tasks import TEXT_ENV_ID, TextTask
from benchmarks.envs.base import Env
from benchmarks.envs.checked import MEMBERS, CheckedEnv, missing_members
from benchmarks.envs.registry import is_env_id, make_env, meant_as_env_id
from memory.distill import DistillParams, EpisodeDigest, ExperienceDistiller
from memory.embeddings import Embedder, default_embedder
from memory.mistakes import FailureCase
from memory.notebook import MistakeNotebook, NotebookParams, NotebookUpdate, NotesView
from memory.store import MemoryStore
from memory.values import ValueSnapshot
from toolsmith.registry import InProcessToolRegistry
from toolsmith.sqlite_registry import SqliteToolRegistry
from toolsmith.synthesizer import Toolsmith, ToolsmithConfig

StepCallback = Callable[[StepView], None]


def new_thread_id() -> str:
    return f"ep-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


class Agent:
    """A self-improving agent: one backbone, one memory, one toolset, one checkpointer.

    >>> agent = Agent()                                  # embedded Gemma 3 270M on CPU
    >>> result = agent.run("textworld:cooking", seed=1)  # or an Env, or a task text
    >>> result.success, result.score, result.steps
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        llm: LLMClient | None = None,
        memory: MemoryStore | None = None,
        toolsmith: Toolsmith | None = None,
        embedder: Embedder | None = None,
        values: ValueSnapshot | None = None,
    ) -> None:
        if settings is not None and not isinstance(settings, Settings):
            raise TypeError(
                f"settings must be a Settings (agent.load_settings(...)), not "
                f"{type(settings).__name__}"
            )
        if values is not None and not isinstance(values, ValueSnapshot):
            raise TypeError(
                f"values must be a ValueSnapshot (memory.values.snapshot()), not "
                f"{type(values).__name__}"
            )
        self.settings = settings or load_settings()
        self._closed = False
        self._values = values
        """Step values every episode acts on (the notebook's re-plays, judged on one set);
        None: each episode takes a snapshot of the memory's step values when it starts."""
        self._owns_llm = llm is None
        if llm is None:
            from agent.llm.factory import make_client

            llm, self.base_url = make_client(self.settings.llm)
        else:
            self.base_url = "scripted"
        self.llm = llm
        try:
            self._open_parts(memory, toolsmith, embedder)
        except BaseException:
            self._close_parts()  # what was opened before the failure: its locks too
            raise

    def _open_parts(
        self, memory: MemoryStore | None, toolsmith: Toolsmith | None, embedder: Embedder | None
    ) -> None:
        self.embedder = embedder or (memory.embedder if memory else default_embedder())
        self._owns_memory = memory is None
        mcfg = self.settings.memory
        self.memory = memory or open_memory(self.settings, self.embedder)
        self._owns_tools = toolsmith is None
        self.toolsmith = toolsmith or Toolsmith(
            SqliteToolRegistry(
                self.settings.memory_path / "tools.sqlite", self.embedder, mcfg.namespace
            ),
            ToolsmithConfig(
                sandbox=self.settings.sandbox.backend,
                code_timeout_s=self.settings.sandbox.timeout_s,
            ),
            env_factory=lambda env_id, seed: make_env(env_id, seed, self.settings.games_path),
        )
        if self.toolsmith.llm is None:
            self.toolsmith.llm = self.llm  # rewrites tool docs from use (DRAFT)
        self.notebook = MistakeNotebook(
            self.memory.notes, self.llm, NotebookParams(batch_size=max(1, mcfg.notebook_batch))
        )
        self.distiller = ExperienceDistiller(
            self.memory.experiences, self.llm, DistillParams(every=max(1, mcfg.distill_every))
        )
        self.last_notebook_update: NotebookUpdate | None = None
        self.checkpoints = CheckpointStore(self.settings.checkpoint_path)
        self.graph: CompiledAgent = build_graph(self.checkpoints.saver)

    # -- public API -------------------------------------------------------------------

    def run(
        self,
        task_or_env: str | Env,
        *,
        seed: int = 0,
        thread_id: str | None = None,
        max_steps: int | None = None,
        token_budget: int | None = None,
        on_step: StepCallback | None = None,
        run_id: str | None = None,
        index: int = 0,
    ) -> EpisodeResult:
        """Play one episode: an ``Env``, an env id (``textworld:cooking``) or a task text."""
        self._check_open()
        env, initial, cfg, row, started = self._start(
            task_or_env, seed, thread_id, max_steps, token_budget, run_id, index
        )
        values = self._drive(initial, cfg, env, started, on_step, *self._live_parts())
        result = self._finish(values, row)
        self._learn_between_episodes(result)
        return result

    def resume(
        self, thread_id: str, on_step: StepCallback | None = None, *, env: Env | None = None
    ) -> EpisodeResult:
        """Finish an episode whose process was killed, from its last checkpoint. ``env``:
        the ``Env`` object an episode was played on, when it is not a registered one (its
        recorded actions are replayed on it after a reset)."""
        self._check_open()
        cfg, values, row, pending = self._checkpointed(thread_id)
        if not pending:
            return self._finish(values, row)
        env = self._replay(values, env)
        values = self._drive(None, cfg, env, time.perf_counter(), on_step, *self._live_parts())
        result = self._finish(values, row)
        self._learn_between_episodes(result)
        return result

    # -- deferred learning ------------------------------------------------------------

    def play(
        self,
        task_or_env: str | Env,
        *,
        seed: int = 0,
        thread_id: str | None = None,
        max_steps: int | None = None,
        token_budget: int | None = None,
        on_step: StepCallback | None = None,
        run_id: str | None = None,
        index: int = 0,
    ) -> PlayedEpisode:
        """Play one episode like ``run()`` but write nothing; ``learn_from()`` learns later.

        The episode reads memory and tools as they are now; ε-greedy exploration uses the
        episode's own RNG (seeded by the thread id) and tool-use feedback is kept in the
        result, so episodes played at the same time cannot influence each other.
        """
        self._check_open()
        env, initial, cfg, row, started = self._start(
            task_or_env, seed, thread_id, max_steps, token_budget, run_id, index
        )
        tool_journal(self.settings.checkpoint_path, row.thread_id).unlink(missing_ok=True)
        return self._play(row.thread_id, initial, cfg, env, row, started, on_step)

    def resume_play(self, thread_id: str, on_step: StepCallback | None = None) -> PlayedEpisode:
        """Finish an episode started by ``play()`` whose process was killed, writing nothing;
        returns it whole (the tool feedback of the steps before the kill included)."""
        self._check_open()
        cfg, values, row, pending = self._checkpointed(thread_id)
        if not pending:
            self._finish(values, row)
            journal = tool_journal(self.settings.checkpoint_path, thread_id)
            recorded = ToolUseRecorder(self.toolsmith, journal)
            return PlayedEpisode(
                state=dict(values), tool_uses=recorded.uses, tool_offers=recorded.offers
            )
        env = self._replay(values)
        return self._play(thread_id, None, cfg, env, row, time.perf_counter(), on_step)

    def learn_from(self, played: PlayedEpisode) -> EpisodeResult:
        """Make the writes ``played`` would have made had it learned as it ran, in the same
        order: tool-use feedback, the reflector's memory writes, the tool-synthesizer's
        mining (all as the settings allow), then distillation and mistake notes.

        Returns the episode's result as ``run()`` would have: with the ids it wrote, and the
        LLM, memory and wall time of the writes that the graph would have counted. An episode
        is learned from once: the same ``played`` again is a ``ResumeError``.
        """
        self._check_open()
        if not isinstance(played, PlayedEpisode):
            raise TypeError(
                f"learn_from takes what play() returned (a PlayedEpisode), not "
                f"{type(played).__name__}"
            )
        if played.learned:
            thread = played.state.get("thread_id")
            raise ResumeError(f"episode {thread} was learned from already; its writes are made")
        state = apply_learning(played, self.memory, self.toolsmith, self.settings, self.llm)
        played.mark_learned()
        result = EpisodeResult.from_state(state, success_of(state))
        self._learn_between_episodes(result)
        return result

    def _learn_between_episodes(self, result: EpisodeResult) -> None:
        """What needs several episodes: distilled experiences and gated mistake notes."""
        mcfg = self.settings.memory
        if not self.settings.agent.learn or result.env == TEXT_ENV_ID:
            return
        if mcfg.distill_every > 0 and self.distiller.observe(EpisodeDigest.from_result(result)):
            self.distiller.consolidate()
        failed = mcfg.notebook_batch > 0 and not result.success
        if failed and self.notebook.record_failure(FailureCase.from_result(result)):
            # One snapshot for both re-plays: step values that another run (a REST server
            # plays several at once) learns in between must not decide between the notes.
            values = self.memory.values.snapshot() if mcfg.step_values else None
            self.last_notebook_update = self.notebook.update(
                lambda batch, view: self._rerun_with_notes(batch, view, values)
            )

    def _rerun_with_notes(
        self, batch: list[FailureCase], view: NotesView, values: ValueSnapshot | None = None
    ) -> list[bool]:
        """Re-play failed tasks seeing exactly ``view``'s notes, learning nothing.

        The re-run has its own throwaway memory (the notes, and read-only the agent's step
        memory, so it chooses actions as this agent would now; ``values``: the step values
        it acts on), tools and checkpoints, so the comparison of old and new notes cannot
        change what the agent has learned.
        """
        import tempfile

        frozen = self.settings.model_copy(deep=True)
        frozen.agent.learn = False
        frozen.memory.notebook_batch = 0
        frozen.memory.distill_every = 0
        with tempfile.TemporaryDirectory(prefix="evolvent-rerun-") as tmp:
            frozen.checkpoint_db = Path(tmp) / "rerun.sqlite"
            store = view.materialize(self.embedder, step_memory=self.memory)
            # Its own tools too: the re-runs must neither see nor count the real ones.
            tools = Toolsmith(InProcessToolRegistry(self.embedder))
            with Agent(
                frozen,
                llm=self.llm,
                memory=store,
                embedder=self.embedder,
                toolsmith=tools,
                values=values,
            ) as rerun:
                return [rerun.run(case.env_id, seed=case.seed or 0).success for case in batch]

    def has_checkpoint(self, thread_id: str) -> bool:
        return bool(self.graph.get_state(self._config(thread_id, None)).values)

    def close(self) -> None:
        """Release the stores and the LLM client it opened (twice is fine)."""
        if not self._closed:
            self._closed = True
            self._close_parts()

    def _close_parts(self) -> None:
        """Close what this agent opened, as far as it got (``__init__`` may have failed)."""
        if getattr(self, "checkpoints", None) is not None:
            self.checkpoints.close()
        if getattr(self, "_owns_memory", False) and getattr(self, "memory", None) is not None:
            self.memory.close()
        if getattr(self, "_owns_tools", False) and getattr(self, "toolsmith", None) is not None:
            self.toolsmith.registry.close()
        if self._owns_llm:
            self.llm.close()

    def _check_open(self) -> None:
        if self._closed:
            raise EvolventError("this agent is closed; make a new Agent to play on")

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------

    def _env_for(self, task_or_env: str | Env, seed: int) -> Env:
        if isinstance(task_or_env, CheckedEnv):
            return task_or_env
        if isinstance(task_or_env, Env):
            return CheckedEnv(task_or_env)  # a user's object: its answers are checked
        if not isinstance(task_or_env, str):
            lacks = missing_members(task_or_env)
            what = type(task_or_env).__name__
            if len(lacks) < len(MEMBERS):  # meant as an Env
                raise TypeError(f"{what} is not an Env: it has no {', '.join(lacks)}")
            raise TypeError(f"give an environment id, an Env or a task text, not {what}")
        if is_env_id(task_or_env) or meant_as_env_id(task_or_env):
            env: Env = make_env(task_or_env, seed, self.settings.games_path)  # or the valid ids
            return env
        if not task_or_env.strip():
            raise ConfigError("the task must not be blank")
        return TextTask(task_or_env)

    def _config(self, thread_id: str, max_steps: int | None) -> RunnableConfig:
        steps = max_steps or self.settings.limits.max_steps
        return {
            "configurable": {"thread_id": thread_id},
            "recursion_limit": recursion_limit(steps, self.settings.limits.max_reflections),
        }

    def _replay(self, values: AgentState, given: Env | None = None) -> Env:
        env_id = values.get("env_id", "")
        env: Env
        if given is not None:
            env = self._env_for(given, values.get("seed", 0))
            if env.env_id != env_id:
                raise ResumeError(
                    f"thread {values['thread_id']} was played on {env_id}, not {env.env_id}"
                )
        elif env_id == TEXT_ENV_ID:
            env = TextTask(values["task"])
        elif not is_env_id(env_id):
            raise ResumeError(
                f"thread {values['thread_id']} was played on {env_id}, an Env object the "
                "registry cannot make again: give it back with agent.resume(thread_id, env=...)"
            )
        else:
            env = make_env(env_id, values.get("seed", 0), self.settings.games_path)
        obs = env.reset()
        text = obs.text
        for step in values.get("steps", []):
            if step["action"] is not None:
                text = env.step(step["action"]).text
        if values.get("steps") and text != values.get("observation"):
            raise ResumeError(
                f"environment {env_id} (seed {values.get('seed')}) diverged while replaying "
                f"thread {values['thread_id']}; it cannot be resumed"
            )
        return env

    def _start(
        self,
        task_or_env: str | Env,
        seed: int,
        thread_id: str | None,
        max_steps: int | None,
        token_budget: int | None,
        run_id: str | None,
        index: int,
    ) -> tuple[Env, AgentState, RunnableConfig, EpisodeRow, float]:
        """Open the environment and the episode's row; the graph's initial state."""
        for name, limit in (("max_steps", max_steps), ("token_budget", token_budget)):
            if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
                raise TypeError(f"{name} must be an int, not {type(limit).__name__}")
            if limit is not None and limit < 1:
                raise ConfigError(f"{name} must be at least 1, not {limit}")
        env = self._env_for(task_or_env, seed)
        thread_id = thread_id or new_thread_id()
        cfg = self._config(thread_id, max_steps)
        if self.graph.get_state(cfg).values:
            raise ResumeError(
                f"thread {thread_id!r} already exists; resume it with `evolvent run --resume "
                f"{thread_id}` or pick another --thread-id"
            )
        limits = self.settings.limits
        row = EpisodeRow(
            thread_id=thread_id,
            run_id=run_id or thread_id,
            idx=index,
            env=env.env_id,
            seed=env.seed,
            status="running",
        )
        self.checkpoints.put_episode(row)
        started = time.perf_counter()
        try:
            obs = env.reset()
        except BaseException:
            env.close()
            raise
        reset_s = time.perf_counter() - started
        initial: AgentState = {
            "thread_id": thread_id,
            "env_id": env.env_id,
            "seed": env.seed,
            "task": obs.task,
            "first_observation": obs.text,
            "observation": obs.text,
            "admissible": list(obs.admissible),
            "score": obs.info.score,
            "max_score": obs.info.max_score,
            "won": False,
            "lost": False,
            "done": False,
            "stop_reason": None,
            "steps": [],
            "step_count": 0,
            "reflections": [],
            "max_steps": max_steps or limits.max_steps,
            "token_budget": token_budget or limits.token_budget,
            "env_s": reset_s,
        }
        return env, initial, cfg, row, started

    def _checkpointed(self, thread_id: str) -> tuple[RunnableConfig, AgentState, EpisodeRow, bool]:
        """A checkpointed episode: its config, state, row, and whether nodes are left."""
        cfg = self._config(thread_id, None)
        snap = self.graph.get_state(cfg)
        values: AgentState = snap.values  # type: ignore[assignment]
        if not values:
            raise ResumeError(f"no episode with thread id {thread_id!r} in {self.checkpoints.path}")
        row = self.checkpoints.episode(thread_id) or EpisodeRow(
            thread_id=thread_id,
            run_id=thread_id,
            idx=0,
            env=values.get("env_id", ""),
            seed=values.get("seed", 0),
            status="running",
        )
        # Work is left while a node is due (``next``) or a node's writes were saved without
        # the checkpoint after them (a kill in between): ``next`` leaves that node out, but
        # the run has not finished, and resuming applies its writes without running it again.
        pending = bool(snap.next) or bool(snap.tasks)
        return self._config(thread_id, values.get("max_steps")), values, row, pending

    def _live_parts(self) -> tuple[MemoryStore, Toolsmith, Settings]:
        """What an episode that learns as it runs reads and writes."""
        return self.memory, self.toolsmith, self.settings

    def _play(
        self,
        thread_id: str,
        initial: AgentState | None,
        cfg: RunnableConfig,
        env: Env,
        row: EpisodeRow,
        started: float,
        on_step: StepCallback | None,
    ) -> PlayedEpisode:
        """Drive the graph with learning off, on a private exploration RNG and tool recorder."""
        frozen = self.settings.model_copy(deep=True)
        frozen.agent.learn = False
        recorder = ToolUseRecorder(
            self.toolsmith, tool_journal(self.settings.checkpoint_path, thread_id)
        )
        memory = exploring_view(self.memory, thread_id)
        values = self._drive(initial, cfg, env, started, on_step, memory, recorder, frozen)
        self._finish(values, row)
        return PlayedEpisode(
            state=dict(values), tool_uses=recorder.uses, tool_offers=recorder.offers
        )

    def _drive(
        self,
        initial: AgentState | None,
        cfg: RunnableConfig,
        env: Env,
        started: float,
        on_step: StepCallback | None,
        memory: MemoryStore,
        toolsmith: Toolsmith,
        settings: Settings,
    ) -> AgentState:
        ctx = EpisodeContext(
            env=env,
            llm=self.llm,
            memory=memory,
            toolsmith=toolsmith,
            settings=settings,
            invocation=uuid.uuid4().hex,
            started=started,
            values=self._values,
        )
        try:
            # agent.durability (default "sync"): a node's checkpoint is written before the
            # next node runs, so a step that on_step reported (a REST event, a CLI line)
            # survives a kill; "async" and "exit" trade that for less time per step.
            # The state after each super-step comes along ("values"): the last one is the
            # episode's end, with no read of the checkpoint after the run. The nodes'
            # updates only when someone is told of each step (about 0.1 ms a run less).
            last: AgentState | None = None
            modes: list[StreamMode] = ["values"] if on_step is None else ["updates", "values"]
            for mode, chunk in self.graph.stream(
                initial,
                cfg,
                context=ctx,
                stream_mode=modes,
                durability=settings.agent.durability,
            ):
                if mode == "values":
                    last = cast(AgentState, chunk)
                    continue
                if on_step is None:
                    continue
                for node_update in cast(dict[str, Any], chunk).values():
                    if isinstance(node_update, dict):
                        for st in node_update.get("steps", []):
                            on_step(StepView.model_validate(dict(st)))
        finally:
            closing = time.perf_counter()
            env.close()
            closed = time.perf_counter()
        values = cast(
            AgentState, dict(last) if last is not None else self.graph.get_state(cfg).values
        )
        # The last checkpoint write happened after the last node measured its time; closing
        # the environment is the environment's time.
        if values.get("tick_owner") == ctx.invocation:
            values["wall_s"] = values.get("wall_s", 0.0) + time.perf_counter() - values["tick"]
            values["env_s"] = values.get("env_s", 0.0) + closed - closing
        return values

    def _finish(self, values: AgentState, row: EpisodeRow) -> EpisodeResult:
        result = EpisodeResult.from_state(values, success_of(values))
        row.status = "finished"
        row.result = result.summary()
        self.checkpoints.put_episode(row)
        if self.settings.agent.freeze_heap:
            settle_once()
        return result
