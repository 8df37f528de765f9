"""``Toolsmith``: turns episodes into validated tools, offers them, and learns from their use.

Synthesis: successful trajectories are mined (LLM-free) into concrete and parametrized macros;
after failures, the LLM may be asked for a code tool. Every candidate is validated (macro
replay, or static checks and sandboxed tests) and registered: active, or rejected with the
reason. Uses are counted, their failures refine the doc (DRAFT), and the convergence counter
tracks tools synthesized / tool invocations per batch of episodes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from agent.llm.base import LLMClient
from sandbox.base import Sandbox
from toolsmith.codegen import propose_code_tool
from toolsmith.convergence import ConvergenceCounter
from toolsmith.docs import classify, refine_doc
from toolsmith.mining import macro_name, mine_macros
from toolsmith.models import Tool, ToolProvenance, ToolUse, Trajectory
from toolsmith.params import bindings, instantiate, matches, mine_templates, slots_in
from toolsmith.registry import ToolRegistry
from toolsmith.replay import EnvFactory
from toolsmith.sandboxed import CodeToolResult, call_code_tool
from toolsmith.validate import Verdict, validate_code_tool, validate_macro


class ToolsmithConfig(BaseModel):
    """How tools are mined, validated, offered and refined."""

    min_support: int = Field(default=2, ge=1)
    """Successful episodes a procedure must appear in to become a macro."""
    max_len: int = Field(default=4, ge=2)
    """Longest macro, in steps."""
    keep_trajectories: int = Field(default=200, ge=1)
    """Successful episodes kept per environment for mining and replay."""
    parametrize: bool = True
    """Merge sequences that differ only in object words into macros with slots."""
    offer: bool = True
    """Offer tools to the executor (False: mine and validate only, e.g. for a baseline)."""
    offer_k: int = Field(default=3, ge=0)
    """Tools offered per step."""
    max_bindings: int = Field(default=6, ge=1)
    """Instantiations offered per parametrized macro (those whose values the context
    mentions first)."""
    code_every: int = Field(default=0, ge=0)
    """Failed episodes between requests for an LLM-written code tool (0: never)."""
    code_timeout_s: float = Field(default=5.0, gt=0)
    """Wall-clock limit of one code tool call, and of its tests at validation (x2)."""
    code_max_tokens: int = Field(default=500, ge=64)
    """Tokens the LLM may spend on a code tool."""
    doc_every: int = Field(default=3, ge=0)
    """Failures of a tool before its doc is rewritten (0: never)."""
    disable_after: int = Field(default=6, ge=0)
    """Uses after which a tool whose utility stays below ``disable_below`` is disabled
    (with the reason recorded; ``evolvent tools enable`` brings it back). 0: never."""
    disable_below: float = Field(default=0.3, ge=0, le=1)
    batch_size: int = Field(default=10, ge=1)
    """Episodes per batch of the convergence metric."""
    sandbox: str = "auto"
    """Sandbox backend for code tools when none is passed in."""


class Toolsmith:
    def __init__(
        self,
        registry: ToolRegistry,
        config: ToolsmithConfig | None = None,
        *,
        env_factory: EnvFactory | None = None,
        sandbox: Sandbox | Callable[[], Sandbox] | None = None,
        llm: LLMClient | None = None,
    ) -> None:
        self.registry = registry
        self.config = config or ToolsmithConfig()
        self.env_factory = env_factory
        self.llm = llm
        """Used to rewrite docs and write code tools; the agent sets its backbone here."""
        self._sandbox = sandbox
        self.counter = ConvergenceCounter(batch_size=self.config.batch_size)
        self._failures = 0
        self._lock = threading.RLock()

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox code tools run in (built on first use)."""
        with self._lock:
            if self._sandbox is None:
                from sandbox.factory import get_sandbox

                self._sandbox = get_sandbox(self.config.sandbox)
            elif not isinstance(self._sandbox, Sandbox):
                self._sandbox = self._sandbox()
            return self._sandbox

    # -- synthesis --------------------------------------------------------------------

    def observe(
        self,
        episode_id: str,
        env_id: str,
        actions: Sequence[str],
        success: bool,
        *,
        seed: int | None = None,
        from_tool: Sequence[bool] = (),
        score: float | None = None,
    ) -> list[Tool]:
        """Learn from a finished episode; returns the tools it registered (rejected ones
        included). ``actions`` are all its environment actions; ``from_tool`` marks those a
        tool ran; ``seed`` makes the episode replayable for macro validation."""
        try:
            if not success or len(actions) < 2:
                return []
            traj = Trajectory(
                episode_id=episode_id,
                env_id=env_id,
                seed=seed,
                actions=list(actions),
                from_tool=list(from_tool),
                score=score,
            )
            with self._lock:
                self.registry.add_trajectory(traj, self.config.keep_trajectories)
                trajs = self.registry.trajectories(env_id)
                return [self._admit(c, trajs) for c in self._candidates(trajs, traj, env_id)]
        finally:
            self.counter.end_episode()

    def _candidates(self, trajs: list[Trajectory], new: Trajectory, env_id: str) -> list[Tool]:
        cfg = self.config
        segs = [(t.episode_id, t.segments()) for t in trajs]
        templates = (
            mine_templates(segs, cfg.min_support, 2, cfg.max_len, focus=new.episode_id)
            if cfg.parametrize
            else []
        )
        flat = [(eid, seg) for eid, segments in segs for seg in segments]
        # Parametrized macros found before cover their special cases, and with the ones found
        # now, their instantiations (a rejected one covers nothing: a special case may work).
        known = [
            (t.steps, t.slots)
            for t in self.registry.list_tools()
            if t.slots and t.status != "rejected"
        ]
        templates = [
            tpl
            for tpl in templates
            if not any(
                all(matches(steps, slots, instantiate(tpl.steps, v)) for v in tpl.instances)
                for steps, slots in known
            )
        ]
        general = known + [(t.steps, t.slots) for t in templates]
        out: list[Tool] = []
        for tpl in templates:
            seen = "; ".join(", ".join(f"{k}={v}" for k, v in i.items()) for i in tpl.instances)
            out.append(
                Tool(
                    name=macro_name(tpl.steps),
                    kind="macro",
                    doc=f"Runs, in order: {'; '.join(tpl.steps)} (seen with {seen[:160]})",
                    steps=tpl.steps,
                    slots=tpl.slots,
                    provenance=ToolProvenance(episode_ids=tpl.support, env_id=env_id),
                )
            )
        for m in mine_macros(flat, cfg.min_support, 2, cfg.max_len):
            if any(matches(steps, slots, m.steps) for steps, slots in general):
                continue  # an instantiation of a parametrized macro: no separate tool
            out.append(
                Tool(
                    name=macro_name(m.steps),
                    kind="macro",
                    doc="Runs, in order: " + "; ".join(m.steps),
                    steps=m.steps,
                    provenance=ToolProvenance(episode_ids=m.support, env_id=env_id),
                )
            )
        unique = {t.name: t for t in out if self.registry.get(t.name) is None}
        return list(unique.values())

    def _admit(self, tool: Tool, trajs: list[Trajectory]) -> Tool:
        support = set(tool.provenance.episode_ids)
        verdict = validate_macro(
            tool, [t for t in trajs if t.episode_id in support], self.env_factory
        )
        return self._register(tool, verdict)

    def _register(self, tool: Tool, verdict: Verdict) -> Tool:
        if verdict.ok:
            tool = tool.model_copy(update={"status": "active", "validation": verdict.note})
            self.counter.add_synthesized()
        else:
            tool = tool.model_copy(
                update={"status": "rejected", "reason": verdict.note, "validation": verdict.note}
            )
            self.counter.add_rejected()
        return self.registry.register(tool)

    def submit(self, tool: Tool) -> Tool:
        """Validate a candidate (a code tool: checks and sandboxed tests; a macro: replay on
        the stored episodes) and register it, active or rejected with the reason. A code tool
        whose name is taken gets a numbered name: a new capability, not a new version."""
        with self._lock:
            if tool.kind == "code":
                base, n = tool.name, 2
                while self.registry.get(tool.name) is not None:
                    tool = tool.model_copy(update={"name": f"{base}_{n}"})
                    n += 1
                try:
                    box: Sandbox | None = self.sandbox
                except Exception:  # no backend works here: the tests cannot run
                    box = None
                verdict = validate_code_tool(tool, box, 2 * self.config.code_timeout_s)
                return self._register(tool, verdict)
            env_id = tool.provenance.env_id or ""
            return self._admit(tool, self.registry.trajectories(env_id))

    def propose_code(self, task: str, trajectory_summary: str) -> Tool | None:
        """Ask the LLM for a code tool and submit it; None without an LLM or an answer."""
        if self.llm is None:
            return None
        tool = propose_code_tool(
            self.llm, task, trajectory_summary, max_tokens=self.config.code_max_tokens
        )
        return self.submit(tool) if tool is not None else None

    def after_failure(self, task: str, trajectory_summary: str) -> Tool | None:
        """Called after each failed episode: every ``code_every``-th failure, the missing
        capability is asked of the LLM as a code tool (registered active or rejected)."""
        if self.config.code_every <= 0:
            return None
        with self._lock:
            self._failures += 1
            due = self._failures % self.config.code_every == 0
        return self.propose_code(task, trajectory_summary) if due else None

    # -- use --------------------------------------------------------------------------

    def offer(
        self,
        task: str,
        admissible: Sequence[str],
        k: int | None = None,
        context: str = "",
        step: int | None = None,
    ) -> list[Tool]:
        """Active tools relevant to the task that can run now, most relevant first
        (``step``: the episode step they are offered at, for recorders that count offers).

        A concrete macro: when its first step is admissible. A parametrized one: one
        instantiation per way the admissible actions fill its first step's slots (``args``
        set, first step bound), those whose values ``context`` (e.g. the observation)
        mentions first. A code tool: always (it reads the admissible actions).
        """
        k = self.config.offer_k if k is None else k
        if not self.config.offer or k <= 0:
            return []
        allowed = set(admissible)
        out: list[Tool] = []
        for t in self.registry.retrieve(task, k=20):
            if len({o.name for o in out}) >= k:
                break
            unbound_first = bool(t.steps) and not slots_in(t.steps[0], t.slots)
            if t.kind == "code" or (unbound_first and t.steps[0] in allowed):
                out.append(t)
            elif t.steps:
                found = bindings(t.steps[0], t.slots, admissible)
                text = context.lower()
                found.sort(key=lambda a: not all(v.lower() in text for v in a.values()))
                for args in found[: self.config.max_bindings]:
                    out.append(
                        t.model_copy(update={"args": args, "steps": instantiate(t.steps, args)})
                    )
        if out:
            self.counter.add_offer()
        return out

    def run_code(self, tool: Tool, observation: str, admissible: Sequence[str]) -> CodeToolResult:
        """Run a code tool in the sandbox (the executor's one action for it)."""
        try:
            box = self.sandbox
        except Exception as e:
            return CodeToolResult(error=f"no sandbox: {e}")
        return call_code_tool(box, tool, observation, admissible, self.config.code_timeout_s)

    def record(self, use: ToolUse) -> Tool | None:
        """Count a use, keep what it says for the doc, rewrite the doc when due, and disable a
        tool whose utility stays low."""
        self.counter.add_invocation()
        tool = self.registry.record_use(use, classify(use))
        if tool is None:
            return None
        cfg = self.config
        if cfg.doc_every > 0 and tool.pending_failures >= cfg.doc_every:
            tool = refine_doc(self.registry, tool.name, self.llm, cfg.doc_every) or tool
        if (
            cfg.disable_after
            and tool.uses >= cfg.disable_after
            and tool.utility < cfg.disable_below
        ):
            reason = (
                f"auto-disabled: utility {tool.utility:.2f} after {tool.uses} uses "
                f"(below {cfg.disable_below:g}; {tool.failures} did not complete or lost the game)"
            )
            try:
                return self.registry.set_status(tool.name, "disabled", reason)
            except KeyError:  # the user deleted it meanwhile
                return None
        return self.registry.get(tool.name) or tool
