"""Graph state (checkpointed, JSON-able) and the per-episode context (not checkpointed).

State holds only plain data so that a checkpoint can be read by any process; live objects
(the environment, the LLM client, memory, tools) travel in ``EpisodeContext``.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Literal, NotRequired, TypedDict

from agent.config import Settings
from agent.llm.base import LLMClient
from benchmarks.envs.base import Env
from memory.store import MemoryStore
from memory.textfeatures import EpisodeText
from memory.values import ValueSnapshot
from toolsmith.synthesizer import Toolsmith

StopReason = Literal["won", "lost", "done", "step_limit", "token_budget"]


class StepRecord(TypedDict):
    """One executor step: an action (or a tool call that ran several actions)."""

    index: int
    action: str | None
    """The environment action, or None for a failed step (the LLM gave no valid action)."""
    observation: str
    reward: float
    score: float
    done: bool
    tool: str | None
    """Name of the tool whose expansion this action belongs to."""
    tool_call: NotRequired[str | None]
    """The offered option that ran the tool (``use tool NAME(X=..)``), on its steps."""
    error: str | None
    source: str
    """Who chose the action: ``llm``, ``memory`` (the follow policy), ``explore`` (the step-value
    function's random exploration while learning) or ``tool``."""
    memory_ids: list[str]
    """Step-memory records whose proposals the prompt for this step contained."""
    enabled: NotRequired[list[str]]
    """The actions admissible after this step that were not before it (what the step made
    possible; the step values credit it with their rewards, ``memory.values.enablers``)."""
    llm_s: float
    env_s: float
    tokens: int


class AgentState(TypedDict, total=False):
    # What is being played
    thread_id: str
    env_id: str
    seed: int
    task: str
    # Where the episode stands
    first_observation: str
    observation: str
    admissible: list[str]
    plan: str
    memory_prompt: str
    """Memories rendered for the executor prompt, within the token budget."""
    memories_used: list[str]
    """Ids of every memory that a prompt of this episode contained."""
    tools_offered: list[str]
    steps: Annotated[list[StepRecord], operator.add]
    step_count: int
    """Executor steps taken (failed steps included)."""
    score: float
    max_score: float
    won: bool
    lost: bool
    done: bool
    stop_reason: StopReason | None
    reflections: Annotated[list[str], operator.add]
    reflect_mid: bool
    """Set by the executor's stall detector: reflect, then keep playing."""
    last_reflection_step: int
    finished: bool
    max_steps: int
    token_budget: int
    memories_written: list[str]
    tools_written: list[str]
    # Accounting (survives resume)
    prompt_tokens: int
    completion_tokens: int
    llm_s: float
    env_s: float
    memory_s: float
    """Time in memory and tool retrieval and writes (embedding model + vector store)."""
    wall_s: float
    """Wall time inside graph runs, including checkpoint writes between nodes."""
    tick: float
    tick_owner: str


@dataclass
class EpisodeContext:
    """Live dependencies of one episode, injected into nodes by LangGraph's Runtime."""

    env: Env
    llm: LLMClient
    memory: MemoryStore
    toolsmith: Toolsmith
    settings: Settings
    invocation: str
    """Identifies one graph run in one process (wall-time accounting across resumes)."""
    started: float
    """perf_counter() when this graph run started."""
    memory_s: float = 0.0
    """Running total of ``memory_time()`` blocks in this graph run."""
    has_action_memories: bool | None = None
    """Whether step memory held anything when this graph run first asked (an episode writes
    its step memories after it ends, so one count per run spares a store round trip per step)."""
    values: ValueSnapshot | None = None
    """The step-value function as it stood when first asked in this graph run: the run
    acts on these values (nothing it does changes them; learning happens after it)."""
    episode_text: tuple[EpisodeText, int] | None = None
    """The step-value function's text context of this episode and how many steps it has
    seen, extended step by step (``agent.stepmemory.episode_text``) instead of rebuilt."""

    @contextmanager
    def memory_time(self) -> Iterator[None]:
        """Time a block of memory or tool-registry work (reported apart from overhead)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.memory_s += time.perf_counter() - t0
