"""Episodes played now and learned from later (batch-synchronous training, Ray workers).

``Agent.play`` runs the graph with learning off, against memory and tools as they are when
the episode starts. Nothing is written: tool-use feedback, which the executor reports
mid-episode, is kept by a ``ToolUseRecorder`` instead of reaching the registry, and ε-greedy
exploration draws from the episode's own RNG (seeded by its thread id) instead of the store's
shared one. So an episode's result depends only on what memory holds when it starts, never on
which other episodes run at the same time, in which thread or on which machine.

What the episode would have written is returned as a ``PlayedEpisode`` (plain JSON-able data,
so it can be persisted or sent between processes); ``Agent.learn_from`` makes those writes
later, through the same functions the reflector and the tool-synthesizer use.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, Field, PrivateAttr

from agent.config import Settings
from agent.llm.base import LLMClient
from agent.nodes.reflector import success_of, write_memories
from agent.nodes.tool_synthesizer import synthesize_tools
from agent.result import EpisodeResult
from agent.state import AgentState
from memory.episodic import EpisodicMemory
from memory.store import MemoryStore
from toolsmith.models import Tool, ToolUse
from toolsmith.synthesizer import Toolsmith


class PlayedEpisode(BaseModel):
    """A finished episode whose learning has not been applied yet (``Agent.learn_from``)."""

    state: dict[str, Any]
    """The final graph state (an ``AgentState``): what the reflector, the tool-synthesizer
    and the between-episode learners (distillation, mistake notebook) read."""
    tool_uses: list[ToolUse] = Field(default_factory=list)
    """Tool calls in the order they ran; their feedback (use counts, DRAFT doc rewrites)
    reaches the registry when the episode is learned from."""
    tool_offers: int = 0
    """Steps at which tools were offered (the convergence counter's offers)."""
    _learned: bool = PrivateAttr(default=False)

    @property
    def learned(self) -> bool:
        """Its learning was applied (by ``Agent.learn_from``): not again. Not saved with
        it: a copy read back from disk is learned from when its learning was not logged."""
        return self._learned

    def mark_learned(self) -> None:
        self._learned = True

    @property
    def thread_id(self) -> str:
        return str(self.state["thread_id"])

    @property
    def agent_state(self) -> AgentState:
        return cast(AgentState, self.state)

    def result(self) -> EpisodeResult:
        """The episode as played (nothing written yet)."""
        return EpisodeResult.from_state(self.agent_state, success_of(self.agent_state))


class ToolUseRecorder(Toolsmith):
    """Offers and runs the tools of ``base`` but keeps their feedback for later.

    The executor reports every tool call through ``record()``; here it is appended to
    ``uses`` instead of changing the registry, so concurrent episodes never see each other's
    feedback. ``Agent.learn_from`` replays the uses into the real toolsmith, in order.

    With a ``journal`` file every offer and use is also appended there as it happens, and a
    recorder opened on an existing journal starts from what it holds: an episode resumed
    after a kill keeps the feedback of the steps it played before.
    """

    def __init__(self, base: Toolsmith, journal: Path | None = None) -> None:
        super().__init__(
            base.registry,
            base.config,
            env_factory=base.env_factory,
            sandbox=lambda: base.sandbox,  # built once, by the base, when a code tool runs
            llm=base.llm,
        )
        self.uses: list[ToolUse] = []
        self._offered: set[int] = set()
        """Steps at which tools were offered: a step that a kill interrupted after its
        offer runs again on resume and offers again, but counts once."""
        self._unnumbered = 0
        self._journal = journal
        if journal is not None and journal.is_file():
            for line in journal.read_text(encoding="utf-8").splitlines():
                try:
                    event = json.loads(line)
                    if "offer" in event:
                        self._count_offer(event["offer"])
                    else:
                        self.uses.append(ToolUse.model_validate(event["use"]))
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # a line cut short by the kill

    @property
    def offers(self) -> int:
        """Steps at which tools were offered."""
        return len(self._offered) + self._unnumbered

    def _count_offer(self, step: object) -> None:
        if isinstance(step, int) and not isinstance(step, bool):
            self._offered.add(step)
        else:  # an offer with no step (a journal written before steps were kept)
            self._unnumbered += 1

    def _log(self, event: dict[str, Any]) -> None:
        if self._journal is None:
            return
        self._journal.parent.mkdir(parents=True, exist_ok=True)
        with self._journal.open("a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")

    def offer(
        self,
        task: str,
        admissible: Sequence[str],
        k: int | None = None,
        context: str = "",
        step: int | None = None,
    ) -> list[Tool]:
        tools = super().offer(task, admissible, k, context, step)
        if tools:
            self._count_offer(step)
            self._log({"offer": step if step is not None else True})
        return tools

    def record(self, use: ToolUse) -> Tool | None:
        self.uses.append(use.model_copy(deep=True))
        self._log({"use": use.model_dump(mode="json")})
        return None


def tool_journal(checkpoint_db: Path, thread_id: str) -> Path:
    """Where ``Agent.play`` journals the tool feedback of ``thread_id`` (beside the
    checkpoint file, which holds the rest of the episode)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", thread_id)
    return checkpoint_db.with_name(f"{checkpoint_db.stem}.tool-uses") / f"{safe}.jsonl"


def exploration_seed(thread_id: str) -> int:
    """A stable 64-bit seed from a thread id (the same in every process and run)."""
    return int.from_bytes(hashlib.sha256(thread_id.encode()).digest()[:8], "big")


def exploring_view(memory: MemoryStore, thread_id: str) -> MemoryStore:
    """``memory`` with episodic retrieval exploring from the episode's own RNG.

    Everything else is shared with ``memory`` (same backend, embedder, collections);
    the view is only read from, and needs no closing.
    """
    view = copy.copy(memory)
    ep = memory.episodes
    view.episodes = EpisodicMemory(
        ep.backend, ep.embedder, ep.collection, ep.params, seed=exploration_seed(thread_id)
    )
    return view


def apply_learning(
    played: PlayedEpisode,
    memory: MemoryStore,
    toolsmith: Toolsmith,
    settings: Settings,
    llm: LLMClient,
) -> AgentState:
    """The in-graph learning of ``played``, made now: tool-use feedback (as the executor
    reports it), then the reflector's memory writes and the tool-synthesizer's mining, as
    ``settings.agent`` allows. Returns the final state as the graph would have left it: the
    ids written, plus the LLM (``llm``'s meter), memory and wall time of these writes."""
    started = time.perf_counter()
    llm_before = llm.meter.snapshot()
    memory_s = 0.0

    @contextmanager
    def timed() -> Iterator[None]:
        nonlocal memory_s
        t0 = time.perf_counter()
        try:
            yield
        finally:
            memory_s += time.perf_counter() - t0

    state = played.agent_state.copy()
    for _ in range(played.tool_offers):
        toolsmith.counter.add_offer()
    for use in played.tool_uses:
        toolsmith.record(use)
    if settings.agent.learn:
        with timed():
            state["memories_written"] = write_memories(state, memory, settings)
        if settings.agent.use_tools:
            state["tools_written"] = synthesize_tools(state, toolsmith, timed)
    used = llm.meter.snapshot() - llm_before
    state["llm_s"] = state.get("llm_s", 0.0) + used.seconds
    state["prompt_tokens"] = state.get("prompt_tokens", 0) + used.prompt_tokens
    state["completion_tokens"] = state.get("completion_tokens", 0) + used.completion_tokens
    state["memory_s"] = state.get("memory_s", 0.0) + memory_s
    state["wall_s"] = state.get("wall_s", 0.0) + time.perf_counter() - started
    return state
