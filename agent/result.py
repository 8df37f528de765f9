"""The typed result of one episode."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agent.state import AgentState


class StepView(BaseModel):
    """One executed step as the API reports it."""

    index: int
    action: str | None
    observation: str
    reward: float
    score: float
    tool: str | None = None
    tool_call: str | None = None
    """The offered option that ran the tool (``use tool NAME(X=..)``)."""
    error: str | None = None
    source: str = "llm"
    memory_ids: list[str] = Field(default_factory=list)
    llm_s: float = 0.0
    env_s: float = 0.0
    tokens: int = 0


class EpisodeResult(BaseModel):
    """What ``Agent.run()`` returns and ``evolvent run --json`` prints (minus the trajectory)."""

    thread_id: str
    env: str
    seed: int
    task: str
    success: bool
    score: float
    max_score: float
    steps: int
    """Executor steps (a tool call counts once; failed steps count)."""
    actions: int
    """Environment actions actually taken."""
    failed_steps: int
    stop_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    tokens: int
    wall_s: float
    llm_s: float
    env_s: float
    memory_s: float = 0.0
    """Time in memory and tool retrieval and writes (embedding model + vector store)."""
    plan: str = ""
    reflections: list[str] = Field(default_factory=list)
    memories_used: list[str] = Field(default_factory=list)
    memories_written: list[str] = Field(default_factory=list)
    tools_used: list[str] = Field(default_factory=list)
    tools_written: list[str] = Field(default_factory=list)
    trajectory: list[StepView] = Field(default_factory=list)

    @property
    def normalized_score(self) -> float:
        return self.score / self.max_score if self.max_score else 0.0

    @property
    def overhead_s(self) -> float:
        """Wall time outside the LLM, the environment and memory: the framework's own cost."""
        return max(0.0, self.wall_s - self.llm_s - self.env_s - self.memory_s)

    def summary(self) -> dict[str, Any]:
        """The flat JSON object printed per episode by ``evolvent run --json``."""
        d = self.model_dump(exclude={"trajectory", "plan", "reflections"})
        d["normalized_score"] = round(self.normalized_score, 4)
        d["overhead_s"] = round(self.overhead_s, 4)
        for k in ("wall_s", "llm_s", "env_s", "memory_s"):
            d[k] = round(d[k], 4)
        return d

    @classmethod
    def from_state(cls, s: AgentState, success: bool) -> EpisodeResult:
        steps = s.get("steps", [])
        executor_steps = s.get("step_count", 0)
        tools_used = list(dict.fromkeys(st["tool"] for st in steps if st["tool"]))
        return cls(
            thread_id=s["thread_id"],
            env=s.get("env_id", ""),
            seed=s.get("seed", 0),
            task=s.get("task", ""),
            success=success,
            score=s.get("score", 0.0),
            max_score=s.get("max_score", 0.0),
            steps=executor_steps,
            actions=sum(1 for st in steps if st["action"] is not None),
            failed_steps=sum(1 for st in steps if st["action"] is None),
            stop_reason=s.get("stop_reason"),
            prompt_tokens=s.get("prompt_tokens", 0),
            completion_tokens=s.get("completion_tokens", 0),
            tokens=s.get("prompt_tokens", 0) + s.get("completion_tokens", 0),
            wall_s=s.get("wall_s", 0.0),
            llm_s=s.get("llm_s", 0.0),
            env_s=s.get("env_s", 0.0),
            memory_s=s.get("memory_s", 0.0),
            plan=s.get("plan", ""),
            reflections=list(s.get("reflections", [])),
            memories_used=list(s.get("memories_used", [])),
            memories_written=list(s.get("memories_written", [])),
            tools_used=tools_used,
            tools_written=list(s.get("tools_written", [])),
            trajectory=[StepView.model_validate(dict(st)) for st in steps],
        )
