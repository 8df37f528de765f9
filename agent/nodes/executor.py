"""Executor: one node step = one environment action, or one tool call (a macro's actions).

The action is chosen by constrained decoding among the admissible actions (plus the tools
that can run now), so even a weak model always emits a valid action. An LLM that keeps
answering junk costs a failed step, not the episode.
"""

from __future__ import annotations

import copy
import random
import time
from typing import Any

from agent import noops
from agent.errors import InvalidLLMOutput, StepLimitReached, StopCondition, TokenBudgetExhausted
from agent.prompts import executor_prompt, render_proposals
from agent.shortlist import shortlist
from agent.stall import detect_stall
from agent.state import AgentState, EpisodeContext, StepRecord
from agent.stepmemory import current_state, episode_text
from benchmarks.envs.base import StepResult
from memory.actions import ActionProposal
from memory.textfeatures import EpisodeText
from memory.values import Assessment, ValueSnapshot, newly_admissible
from toolsmith.models import Tool, ToolUse
from toolsmith.params import resolve_step

TOOL_PREFIX = "use tool "
FREE_TEXT_MAX_TOKENS = 64


def check_limits(state: AgentState) -> None:
    """Raise the typed stop condition that ends the episode now, if any."""
    if state.get("step_count", 0) >= state["max_steps"]:
        raise StepLimitReached(f"step limit {state['max_steps']} reached")
    used = state.get("prompt_tokens", 0) + state.get("completion_tokens", 0)
    if used >= state["token_budget"]:
        raise TokenBudgetExhausted(used, state["token_budget"])


def _history(state: AgentState, keep: int) -> list[tuple[str, str]]:
    rows = [(s["action"] or "(no valid action)", s["observation"]) for s in state.get("steps", [])]
    return rows[-keep:]


def no_op_actions(state: AgentState) -> set[str]:
    """Actions that changed nothing where the episode stands now (``agent.noops``)."""
    moves = (
        noops.Move(s["action"], s["observation"], s.get("reward", 0.0), s["tool"] is not None)
        for s in state.get("steps", [])
    )
    return noops.no_op_actions(
        state.get("first_observation", ""), moves, state.get("observation", "")
    )


def _values(ctx: EpisodeContext) -> ValueSnapshot | None:
    """The step-value function, when step proposals come from it (``memory.step_values``)
    and it has learned from enough episodes (taken once per graph run)."""
    m = ctx.settings.memory
    if m.action_hints <= 0 or not m.step_values:
        return None
    if ctx.values is None:
        ctx.values = ctx.memory.values.snapshot()
    return ctx.values if ctx.values.active() else None


def _proposals(
    state: AgentState, ctx: EpisodeContext, admissible: list[str], text: EpisodeText | None
) -> tuple[list[ActionProposal], Assessment | None]:
    """Step-memory proposals for ``admissible``, and (from the step-value function) the
    value and signature of every admissible action, which the follow policy reuses."""
    k = ctx.settings.memory.action_hints
    if k <= 0 or not admissible:
        return [], None
    if text is not None and ctx.values is not None:
        seen = ctx.values.assess(text, admissible)
        return ctx.values.propose(text, admissible, k=k, values=seen.values), seen
    actions = ctx.memory.actions
    if ctx.has_action_memories is None:
        ctx.has_action_memories = actions.count() > 0
    if not ctx.has_action_memories:
        return [], None  # an empty memory costs no embedding
    key = current_state(state, ctx.settings.agent.state_window)
    return actions.propose(key, admissible, k=k), None


def _to_follow(
    state: AgentState,
    ctx: EpisodeContext,
    proposals: list[ActionProposal],
    choices: list[str],
    text: EpisodeText | None,
    assessment: Assessment | None,
) -> tuple[str | None, str]:
    """Under ``memory.action_policy = follow``: the memory's action for this step and who
    chose it (``memory``; ``explore`` for the value function's random exploration)."""
    settings = ctx.settings
    if not proposals or settings.memory.action_policy != "follow":
        return None, "llm"
    if text is None:
        top = proposals[0]
        if top.value < settings.memory.follow_min_value:
            return None, "llm"
        return top.action, "memory"
    if not settings.agent.learn or ctx.values is None:
        return proposals[0].action, "memory"
    # Seeded by episode and step: a resumed episode makes the same choices again.
    rng = random.Random(f"{state.get('thread_id', '')}:{state.get('step_count', 0)}")
    action, random_pick = ctx.values.explore_choice(text, choices, rng, assessment)
    return action, "explore" if random_pick else "memory"


def _shortlisted(
    state: AgentState, ctx: EpisodeContext, choices: list[str], proposals: list[ActionProposal]
) -> list[str]:
    """The admissible actions the LLM is offered (``agent.max_options`` at most, the step
    memory's proposals kept)."""
    return shortlist(
        choices,
        ctx.settings.agent.max_options,
        task=state["task"],
        observation=state.get("observation", ""),
        keep=[p.action for p in proposals],
    )


def _prompt(
    state: AgentState, ctx: EpisodeContext, options: list[str], proposals: list[ActionProposal]
) -> str:
    """The executor's question to the LLM (made only for a step the LLM chooses)."""
    return executor_prompt(
        task=state["task"],
        plan=state.get("plan", ""),
        memory_text=state.get("memory_prompt", ""),
        reflections=state.get("reflections", []),
        first_observation=state.get("first_observation", ""),
        history=_history(state, ctx.settings.agent.history_steps),
        options=options,
        hints=render_proposals([(p.action, p.value, p.support) for p in proposals]),
    )


def executor(state: AgentState, ctx: EpisodeContext) -> dict[str, Any]:
    try:
        check_limits(state)
    except StopCondition as stop:
        return {"stop_reason": stop.reason}

    admissible = list(state.get("admissible", []))
    choices = admissible  # what is offered; tools still run against every admissible action
    if ctx.settings.agent.skip_no_ops and len(admissible) > 1:
        useless = no_op_actions(state)
        choices = [a for a in admissible if a not in useless] or admissible
    offer = admissible and ctx.settings.agent.use_tools
    with ctx.memory_time():
        tools: list[Tool] = (
            ctx.toolsmith.offer(
                state["task"],
                admissible,
                context=state.get("observation", ""),
                step=state.get("step_count", 0),
            )
            if offer
            else []
        )
        text = None
        if choices and _values(ctx) is not None:
            ctx.episode_text = episode_text(state, ctx.episode_text)
            text = ctx.episode_text[0]
        proposals, assessment = _proposals(state, ctx, choices, text)
        follow, chooser = _to_follow(state, ctx, proposals, choices, text, assessment)
    # A parametrized macro is offered once per slot binding: "use tool NAME(X=carrot)".
    tool_options = {f"{TOOL_PREFIX}{t.call}": t for t in tools}
    memory_ids = [i for p in proposals for i in p.ids]
    if tool_options:
        follow = _tool_to_follow(state, ctx, tool_options, follow)
    index = state.get("step_count", 0)
    llm_before = ctx.llm.meter.snapshot()
    try:
        if follow is not None:
            action = follow  # the memory's proposal is trusted: no LLM call for this step
        else:
            # Only a step the LLM chooses needs the shortlist and the prompt.
            options = _shortlisted(state, ctx, choices, proposals) + list(tool_options)
            prompt = _prompt(state, ctx, options, proposals)
            if options:
                action = ctx.llm.choose(prompt, options).text
            else:
                answer = ctx.llm.complete(prompt, max_tokens=FREE_TEXT_MAX_TOKENS, stop=["\n"])
                action = answer.text.strip()
                if not action:
                    raise InvalidLLMOutput("empty answer")
    except InvalidLLMOutput as e:
        used = ctx.llm.meter.snapshot() - llm_before
        failed: StepRecord = step_record(index, None, "(no valid action)", None, used.seconds, 0.0)
        failed["error"] = str(e)
        failed["score"] = state.get("score", 0.0)
        failed["memory_ids"] = memory_ids
        failed["tokens"] = used.total_tokens
        return {"steps": [failed], "step_count": index + 1, **_limit_update(state, index + 1)}
    used = ctx.llm.meter.snapshot() - llm_before
    llm_s, tokens = used.seconds, used.total_tokens

    tool = tool_options.get(action)
    code_error: str | None = None
    if tool is not None and tool.kind == "code":
        # A code tool runs in the sandbox and answers with the actions to take.
        ran = ctx.toolsmith.run_code(tool, state.get("observation", ""), admissible)
        actions, code_error = ran.actions, ran.error
    else:
        actions = tool.steps if tool else [action]
    records: list[StepRecord] = []
    env_s = 0.0
    last: StepResult | None = None
    allowed = list(admissible)
    guard = _guard(ctx, tool, text)
    guarded: str | None = None
    for i, step_text in enumerate(actions):
        act = step_text
        if tool:
            # A slot left open (only in a later step) is filled from the admissible actions
            # now; a macro stops at the first step the environment would not accept.
            resolved = resolve_step(step_text, allowed, tool.slots)
            if resolved is None:
                break
            act = resolved
            if i > 0 and guard is not None and not guard.allows(act, allowed):
                guarded = act
                break
        t0 = time.perf_counter()
        last = ctx.env.step(act)
        dt = time.perf_counter() - t0
        env_s += dt
        rec = step_record(
            index, act, last.text, tool.name if tool else None, llm_s if i == 0 else 0.0, dt
        )
        rec["reward"] = last.reward
        rec["score"] = last.info.score
        rec["done"] = last.done
        rec["tokens"] = tokens if i == 0 else 0
        rec["source"] = "tool" if tool else (chooser if follow is not None else "llm")
        rec["tool_call"] = action if tool else None
        rec["memory_ids"] = memory_ids if i == 0 else []
        rec["enabled"] = newly_admissible(allowed, last.admissible)
        records.append(rec)
        allowed = list(last.admissible)
        if guard is not None:
            guard.observe(act, last)
        if last.done:
            break
    if tool and not records:
        # The tool ran nothing (code error, first step not admissible): a failed step, so
        # the trajectory shows it.
        empty = step_record(index, None, "(tool ran no action)", tool.name, llm_s, 0.0)
        empty["error"] = code_error or f"tool {tool.call}: first action not admissible"
        empty["score"] = state.get("score", 0.0)
        empty["memory_ids"] = memory_ids
        empty["tokens"] = tokens
        empty["source"] = "tool"
        records.append(empty)
    if tool:
        ctx.toolsmith.record(
            ToolUse(
                name=tool.name,
                actions_run=[r["action"] or "" for r in records],
                completed=bool(actions) and len(records) == len(actions),
                lost=last is not None and last.info.lost,
                reward=sum(r["reward"] for r in records),
                args=dict(tool.args),
                planned=list(actions),
                error=code_error,
                context=state.get("observation", ""),
                guarded=guarded,
            )
        )
    out: dict[str, Any] = {
        "steps": records,
        "step_count": index + 1,
        "env_s": state.get("env_s", 0.0) + env_s,
    }
    if last is not None:
        info = last.info
        out.update(
            observation=last.text,
            admissible=list(last.admissible),
            score=info.score,
            max_score=info.max_score,
            won=info.won,
            lost=info.lost,
            done=last.done,
        )
        if last.done:
            out["stop_reason"] = "won" if info.won else ("lost" if info.lost else "done")
            return out
    out.update(_limit_update(state, index + 1))
    if "stop_reason" not in out:
        history = [*state.get("steps", []), *records]
        out["reflect_mid"] = detect_stall(
            history,
            window=ctx.settings.limits.stall_window,
            reflections=len(state.get("reflections", [])),
            max_reflections=ctx.settings.limits.max_reflections,
            last_reflection_step=state.get("last_reflection_step", -1),
        )
    return out


class _MacroGuard:
    """Lets a macro go on only while the step values rank its next step among their
    ``k`` best actions (``agent.tool_guard_k``), in a copy of the episode's text context
    that follows the macro's own steps."""

    def __init__(self, values: ValueSnapshot, text: EpisodeText, k: int) -> None:
        self.values = values
        self.text = copy.deepcopy(text)
        self.k = k

    def allows(self, action: str, admissible: list[str]) -> bool:
        best = self.values.propose(self.text, admissible, k=self.k)
        return action in {p.action for p in best}

    def observe(self, action: str, result: StepResult) -> None:
        self.text.observe(action, result.text, result.reward)


def _guard(ctx: EpisodeContext, tool: Tool | None, text: EpisodeText | None) -> _MacroGuard | None:
    """The guard of a macro that runs while the step values choose the actions
    (``memory.action_policy = follow``, values active); None otherwise."""
    k = ctx.settings.agent.tool_guard_k
    follow = ctx.settings.memory.action_policy == "follow"
    values = ctx.values
    if tool is None or tool.kind != "macro" or text is None or values is None:
        return None
    return _MacroGuard(values, text, k) if k > 0 and follow else None


def _tool_to_follow(
    state: AgentState, ctx: EpisodeContext, tool_options: dict[str, Tool], action: str | None
) -> str | None:
    """Under ``agent.tool_policy = follow``: the first offered tool (they come most relevant
    first) that is useful enough and whose instantiation has not run in this episode. When
    the memory has chosen ``action`` already (``memory.action_policy = follow``), only a
    macro whose first step is that action: the tool then runs the moves that followed it
    in the episodes it was mined from. Returns the option to take (``action`` when no tool
    qualifies)."""
    agent = ctx.settings.agent
    if agent.tool_policy != "follow":
        return action
    ran = {s.get("tool_call") for s in state.get("steps", [])}
    for option, tool in tool_options.items():
        if option in ran or tool.utility < agent.tool_min_utility:
            continue
        if action is None or (tool.kind == "macro" and tool.steps and tool.steps[0] == action):
            return option
    return action


def _limit_update(state: AgentState, step_count: int) -> dict[str, Any]:
    if step_count >= state["max_steps"]:
        return {"stop_reason": StepLimitReached.reason}
    return {}


def step_record(
    index: int, action: str | None, obs: str, tool: str | None, llm_s: float, env_s: float
) -> StepRecord:
    """A step's record with the fields every step fills; source ``llm``, no reward yet."""
    return StepRecord(
        index=index,
        action=action,
        observation=obs,
        reward=0.0,
        score=0.0,
        done=False,
        tool=tool,
        error=None,
        source="llm",
        memory_ids=[],
        llm_s=llm_s,
        env_s=env_s,
        tokens=0,
    )
