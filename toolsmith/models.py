"""Tool data models: what a tool is, where it came from, how it has fared."""

from __future__ import annotations

import time
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

ToolKind = Literal["macro", "code"]
ToolStatus = Literal["active", "disabled", "rejected"]
TOOL_STATUSES: tuple[str, ...] = get_args(ToolStatus)


def check_status(status: object) -> None:
    """A ``ToolStatus``, or a ``ValueError`` naming the valid ones (a stored unknown status
    would make every later read of the registry fail)."""
    if status not in TOOL_STATUSES:
        raise ValueError(f"unknown tool status {status!r}; valid: {', '.join(TOOL_STATUSES)}")


FeedbackKind = Literal["worked", "not_admissible", "stopped_early", "no_reward", "error", "lost"]

CODE_SIGNATURE = "run(observation: str, admissible: list[str]) -> list[str]"
NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"


class ToolProvenance(BaseModel):
    """Where a tool came from."""

    model_config = ConfigDict(allow_inf_nan=False)

    source: Literal["mined", "llm", "user"] = "mined"
    episode_ids: list[str] = Field(default_factory=list)
    """Episodes whose trajectories contained it."""
    env_id: str | None = None
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)


class ToolFeedback(BaseModel):
    """One use of a tool, kept (since its doc was last written) to refine the doc."""

    model_config = ConfigDict(allow_inf_nan=False)

    kind: FeedbackKind
    detail: str
    """What happened, e.g. ``stopped after 1/2 steps: 'slice carrot' was not admissible``."""
    context: str = ""
    """The observation the tool was called on (clipped)."""
    at: float = Field(default_factory=time.time)

    @property
    def failed(self) -> bool:
        return self.kind != "worked"


class Tool(BaseModel):
    """A reusable procedure: a macro of environment actions (maybe with slots) or code.

    Numbers are finite and counts not negative: an imported NaN would make the registry's
    rankings and its JSON answers fail."""

    model_config = ConfigDict(allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN, max_length=200)
    """What the executor's prompt offers and the LLM answers (``use tool NAME``), and the
    REST path's last part: letters, digits, ``_``, ``.`` and ``-``."""
    kind: ToolKind
    doc: str
    steps: list[str] = Field(default_factory=list)
    """Macro body: environment actions run in order; ``{X}`` marks a slot in ``slots``."""
    slots: list[str] = Field(default_factory=list)
    """Slot names of a parametrized macro (``X``, ``Y``); empty for a concrete one."""
    args: dict[str, str] = Field(default_factory=dict)
    """Slot values of an offered instantiation (never set on the registered tool)."""
    code: str | None = None
    """Python body of a code tool: defines ``run(observation, admissible) -> list[str]``."""
    tests: str | None = None
    """Tests of a code tool (``def test_...`` functions with asserts)."""
    version: int = Field(default=1, ge=1)
    change: str = "created"
    """Why this version exists (created, doc refined from failures, rolled back to vN)."""
    status: ToolStatus = "active"
    reason: str | None = None
    """Why it was rejected or disabled."""
    validation: str | None = None
    """How it was validated (replay scores, tests passed) or why it could not be."""
    provenance: ToolProvenance = Field(default_factory=ToolProvenance)
    uses: int = Field(default=0, ge=0)
    successes: int = Field(default=0, ge=0)
    failures: int = Field(default=0, ge=0)
    reward: float = 0.0
    """Environment reward collected by all its uses."""
    feedback: list[ToolFeedback] = Field(default_factory=list)
    """Uses since the doc was last written (the DRAFT loop reads and clears them)."""

    @model_validator(mode="after")
    def _a_macro_has_steps(self) -> Tool:
        if self.kind == "macro" and not self.steps:
            raise ValueError("a macro needs at least one step")
        return self

    @property
    def success_rate(self) -> float:
        return self.successes / self.uses if self.uses else 0.0

    @property
    def utility(self) -> float:
        """Laplace-smoothed success rate: an unused tool starts at 0.5."""
        return (self.successes + 1) / (self.uses + 2)

    @property
    def signature(self) -> str:
        if self.kind == "code":
            return CODE_SIGNATURE
        return f"{self.name}({', '.join(self.slots)})"

    @property
    def call(self) -> str:
        """How the executor names an offered instantiation: ``NAME`` or ``NAME(X=carrot)``."""
        if not self.args:
            return self.name
        return f"{self.name}({', '.join(f'{k}={v}' for k, v in self.args.items())})"

    def counts_as_failure(self, f: ToolFeedback) -> bool:
        """A use that ran without reward is a failure only for a tool that has paid before
        (a navigation macro never does: its uses are not misuses)."""
        return f.failed and (f.kind != "no_reward" or self.reward > 0)

    @property
    def pending_failures(self) -> int:
        return sum(self.counts_as_failure(f) for f in self.feedback)


class ToolUse(BaseModel):
    """The outcome of running a tool once."""

    name: str
    actions_run: list[str]
    completed: bool
    """All steps ran (a macro stops early when a step is not admissible)."""
    lost: bool = False
    """The game was lost during the tool's steps."""
    guarded: str | None = None
    """The step it was stopped before because the learned step values did not rank it
    among their best actions (``agent.tool_guard_k``)."""
    reward: float = 0.0
    args: dict[str, str] = Field(default_factory=dict)
    """Slot values of the instantiation that ran."""
    planned: list[str] = Field(default_factory=list)
    """The steps it meant to run (a code tool: the actions it returned)."""
    error: str | None = None
    """Why a code tool gave no actions (exception, timeout, bad output)."""
    context: str = ""
    """The observation it was called on."""

    @property
    def succeeded(self) -> bool:
        """All steps ran and the game was not lost on the way."""
        return self.completed and not self.lost


class Trajectory(BaseModel):
    """A successful episode the miner learns from and macro replay validates on."""

    model_config = ConfigDict(allow_inf_nan=False)

    episode_id: str
    env_id: str
    seed: int | None = None
    """None: the episode cannot be replayed."""
    actions: list[str]
    """Every environment action of the episode, in order (tool expansions included)."""
    from_tool: list[bool] = Field(default_factory=list)
    """Per action: it was run by a tool (not mined again); empty means none was."""
    score: float | None = None
    """Final score of the episode, if known."""
    created_at: float = Field(default_factory=time.time)

    @model_validator(mode="after")
    def _a_mark_per_action(self) -> Trajectory:
        if self.from_tool and len(self.from_tool) != len(self.actions):
            raise ValueError("from_tool must be empty or have one mark per action")
        return self

    def segments(self) -> list[list[str]]:
        """Runs of actions the agent chose itself (a tool's expansion splits them)."""
        out: list[list[str]] = [[]]
        for i, act in enumerate(self.actions):
            if i < len(self.from_tool) and self.from_tool[i]:
                if out[-1]:
                    out.append([])
                continue
            out[-1].append(act)
        return [s for s in out if s]
