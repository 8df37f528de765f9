"""The agent graph end to end with a scripted LLM and the instant toy game."""

from __future__ import annotations

import importlib
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import BaseModel

from agent import Agent
from agent.config import Settings, load_settings
from agent.errors import ConfigError, ResumeError, UnknownEnvError
from agent.llm.scripted import ScriptedLLM
from agent.nodes.executor import TOOL_PREFIX, no_op_actions
from agent.result import EpisodeResult
from agent.state import AgentState, StepRecord
from agent.stepping import APPENDED, merge
from benchmarks.envs.toy import ToyEnv
from memory import EpisodicParams, HashingEmbedder, MemoryStore
from memory.mistakes import FailureCase
from memory.notebook import NotesView
from memory.values import ValueSnapshot, stored_steps

executor_module = importlib.import_module("agent.nodes.executor")  # the package exports the node


class Killed(BaseException):
    """Simulates the process dying in the middle of a step."""


def follow_walkthrough(env: ToyEnv, kill_at: int | None = None) -> ScriptedLLM:
    """A policy that plays the walkthrough; it reads its position from the transcript."""
    walk = env.walkthrough

    def respond(kind: str, prompt: str, options: Sequence[str] | type[BaseModel] | None) -> str:
        if kind != "choose":
            return "find the key, then open the chest"
        done = prompt.count("\n> ") - 1
        if kill_at is not None and done == kill_at:
            raise Killed()
        assert isinstance(options, list)
        tool = next((o for o in options if o.startswith(TOOL_PREFIX)), None)
        return tool or walk[done]

    return ScriptedLLM(responder=respond)


def settings(home: Path, **kw: object) -> Settings:
    return load_settings(None, **{"home": str(home), **kw})


def make_agent(home: Path, llm: ScriptedLLM, memory: MemoryStore | None = None) -> Agent:
    store = memory or MemoryStore.in_memory(HashingEmbedder())
    return Agent(settings(home), llm=llm, embedder=store.embedder, memory=store)


def test_walkthrough_wins_and_writes_memory(evolvent_home: Path) -> None:
    env = ToyEnv(seed=3)
    walk = env.walkthrough
    with make_agent(evolvent_home, follow_walkthrough(env)) as agent:
        r = agent.run(env, thread_id="t-win")
        assert r.success and r.stop_reason == "won"
        assert r.score == r.max_score == 2
        assert [s.action for s in r.trajectory] == walk
        assert r.steps == len(walk) and r.failed_steps == 0
        assert r.tokens > 0 and r.prompt_tokens > 0
        assert r.wall_s >= r.llm_s + r.env_s + r.memory_s - 1e-6
        assert r.memory_s > 0  # retrieval in the planner, writes in the reflector
        assert r.memories_written and agent.memory.stats()["episode"] == 1
        rec = agent.memory.get(r.memories_written[0])
        assert rec is not None and rec.provenance.episode_id == "t-win"
        assert rec.provenance.outcome == "success"


class SlowToClose(ToyEnv):
    def close(self) -> None:
        time.sleep(0.05)
        super().close()


def test_closing_the_environment_counts_as_environment_time(evolvent_home: Path) -> None:
    env = SlowToClose(seed=3)
    with make_agent(evolvent_home, follow_walkthrough(env)) as agent:
        r = agent.run(env, thread_id="t-close")
        assert r.success and r.env_s >= 0.05
        assert r.wall_s >= r.llm_s + r.env_s + r.memory_s - 1e-6
        # What the run reports is the state it checkpointed (read from the run's stream, not
        # from the checkpoint), apart from the time accounting added after the last node.
        saved = agent.graph.get_state({"configurable": {"thread_id": "t-close"}}).values
        again = EpisodeResult.from_state(cast(AgentState, saved), True)
        assert again.trajectory == r.trajectory and again.score == r.score
        assert again.env_s < r.env_s and again.wall_s < r.wall_s


def test_step_limit_and_mid_episode_reflection(evolvent_home: Path) -> None:
    llm = ScriptedLLM(responder=lambda k, p, o: "look" if k == "choose" else "ok")
    store = MemoryStore.in_memory(HashingEmbedder())
    loops = settings(evolvent_home, **{"agent.skip_no_ops": False})  # "look" stays on offer
    with Agent(loops, llm=llm, embedder=store.embedder, memory=store) as agent:
        r = agent.run(ToyEnv(seed=1), max_steps=8)
        # The failure waits in the mistake notebook's batch (notes are gated, not written).
        assert len(agent.notebook.pending) == 1
        assert agent.notebook.pending[0].reflections == r.reflections
    assert r.stop_reason == "step_limit" and not r.success
    assert r.steps == 8 and r.actions == 8
    assert r.reflections and "'look' x" in r.reflections[0]
    # The reflection reaches the executor's prompts after it was made.
    assert any("Reflection:" in p for p in llm.prompts[-3:])
    # Every step was learned by the step values (the default step memory), in one record;
    # the per-state action memory, which the executor does not read then, learned nothing.
    (values,) = [m for m in r.memories_written if m.startswith("val-")]
    rec = store.get(values)
    assert rec is not None and len(stored_steps(rec)) == 8
    assert not any(m.startswith("act-") for m in r.memories_written)


def test_an_action_that_changed_nothing_is_not_offered_again_in_that_observation(
    evolvent_home: Path,
) -> None:
    def look_first(kind: str, prompt: str, options: Sequence[str] | type[BaseModel] | None) -> str:
        assert kind != "choose" or isinstance(options, list)
        return ("look" if "look" in options else options[0]) if isinstance(options, list) else ""

    llm = ScriptedLLM(responder=look_first)
    with make_agent(evolvent_home, llm) as agent:
        r = agent.run(ToyEnv(seed=1), max_steps=6)
    # "look" repeats the observation: once per room, then left out there (also on return).
    assert [s.action for s in r.trajectory] == [
        "look",
        "go east",
        "look",
        "go west",
        "go east",
        "go west",
    ]
    chooses = [c.options or [] for c in llm.calls if c.kind == "choose"]
    assert "look" in chooses[0] and "look" not in chooses[1]  # the kitchen, after looking
    assert "look" in chooses[2] and "look" not in chooses[3]  # the attic, before and after


def test_the_executor_offers_at_most_max_options_actions(evolvent_home: Path) -> None:
    llm = ScriptedLLM(responder=lambda k, p, o: o[0] if isinstance(o, list) else "")
    store = MemoryStore.in_memory(HashingEmbedder())
    few = settings(evolvent_home, **{"agent.max_options": 2})
    with Agent(few, llm=llm, embedder=store.embedder, memory=store) as agent:
        agent.run(ToyEnv(seed=1), max_steps=3)
    offered = [c.options or [] for c in llm.calls if c.kind == "choose"]
    assert offered and all(len(o) <= 2 for o in offered)
    # The task ("Find the key, take it, ...") makes "take key" the attic's most relevant option.
    assert any("take key" in o for o in offered)


def test_no_op_actions_need_the_same_observation_before_and_now() -> None:
    def step(action: str | None, observation: str, tool: str | None = None) -> StepRecord:
        record = {"action": action, "observation": observation, "tool": tool}
        return cast(StepRecord, record)

    steps = [step("look", "A"), step("go", "B"), step(None, "(no valid action)")]
    state = {"first_observation": "A", "observation": "B", "steps": steps}
    assert no_op_actions(cast(AgentState, state)) == set()  # "look" did nothing, but in A
    steps += [step("wait", "B"), step("back", "A"), step("open", "A", tool="macro")]
    state = {"first_observation": "A", "observation": "A", "steps": steps}
    # Back in A: "look" did nothing there; a tool's step is the tool's business; "wait" was in B.
    assert no_op_actions(cast(AgentState, state)) == {"look"}


def test_a_loop_that_gains_nothing_is_left_after_going_round_it_twice() -> None:
    def step(action: str, observation: str, reward: float = 0.0) -> StepRecord:
        record = {"action": action, "observation": observation, "tool": None, "reward": reward}
        return cast(StepRecord, record)

    # A weak model alternating two actions: each returns a different text, so no single
    # step left the observation unchanged.
    steps = [step("inventory", "I"), step("examine fridge", "F"), step("inventory", "I")]
    state = {"first_observation": "A", "observation": "I", "steps": steps}
    assert no_op_actions(cast(AgentState, state)) == set()  # once in I, going round is fine
    steps += [step("examine fridge", "F"), step("inventory", "I")]
    state = {"first_observation": "A", "observation": "F", "steps": steps}
    # In F, "inventory" led to I twice: a third time would learn nothing.
    assert no_op_actions(cast(AgentState, state)) == {"inventory"}
    state = {"first_observation": "A", "observation": "I", "steps": steps}
    assert no_op_actions(cast(AgentState, state)) == {"examine fridge"}
    # A step that gained reward is never a no-op, however often it led to the same text.
    paid = [step("go", "B", 1.0), step("back", "A"), step("go", "B", 1.0), step("back", "A")]
    state = {"first_observation": "A", "observation": "A", "steps": paid}
    assert no_op_actions(cast(AgentState, state)) == set()


def test_token_budget_is_a_stop_condition(evolvent_home: Path) -> None:
    llm = ScriptedLLM(responder=lambda k, p, o: "look" if k == "choose" else "ok")
    with make_agent(evolvent_home, llm) as agent:
        r = agent.run(ToyEnv(seed=1), max_steps=50, token_budget=300)
    assert r.stop_reason == "token_budget"
    assert 0 < r.steps < 50 and r.tokens >= 300


def test_junk_answers_are_failed_steps_not_crashes(evolvent_home: Path) -> None:
    llm = ScriptedLLM(responder=lambda k, p, o: "dance wildly" if k == "choose" else "ok")
    with make_agent(evolvent_home, llm) as agent:
        r = agent.run(ToyEnv(seed=2), max_steps=3)
    assert r.stop_reason == "step_limit"
    assert r.failed_steps == 3 and r.actions == 0
    assert all(s.error and "not one of the options" in s.error for s in r.trajectory)


def test_resume_after_kill_finishes_with_same_trajectory(evolvent_home: Path) -> None:
    env = ToyEnv(seed=5)
    walk = env.walkthrough
    assert len(walk) >= 3
    killer = follow_walkthrough(env, kill_at=2)
    with make_agent(evolvent_home, killer) as agent, pytest.raises(Killed):
        agent.run(env, thread_id="t-kill")
    # A new process: new agent, same checkpoint database.
    with make_agent(evolvent_home, follow_walkthrough(ToyEnv(seed=5))) as agent:
        r = agent.resume("t-kill")
        assert r.success
        assert [s.action for s in r.trajectory] == walk
        assert [s.index for s in r.trajectory] == list(range(len(walk)))
        # Resuming a finished episode returns its result without playing again.
        again = agent.resume("t-kill")
        assert again.trajectory == r.trajectory
        with pytest.raises(ResumeError, match="already exists"):
            agent.run(ToyEnv(seed=5), thread_id="t-kill")
        with pytest.raises(ResumeError, match="no episode"):
            agent.resume("nope")


def test_resume_after_a_kill_between_a_nodes_writes_and_its_checkpoint(
    evolvent_home: Path,
) -> None:
    env = ToyEnv(seed=5)
    walk = env.walkthrough
    with make_agent(evolvent_home, follow_walkthrough(env, kill_at=2)) as agent:
        with pytest.raises(Killed):
            agent.run(env, thread_id="t-gap")
        db = agent.settings.checkpoint_path
    # The process died after step 1's writes were saved but before the checkpoint that
    # follows them: LangGraph then names no next node, yet the episode is not over.
    with sqlite3.connect(db) as conn:
        (last,) = conn.execute(
            "SELECT max(checkpoint_id) FROM checkpoints WHERE thread_id = 't-gap'"
        ).fetchone()
        conn.execute("DELETE FROM checkpoints WHERE checkpoint_id = ?", (last,))
    with make_agent(evolvent_home, follow_walkthrough(ToyEnv(seed=5))) as agent:
        snap = agent.graph.get_state({"configurable": {"thread_id": "t-gap"}})
        assert not snap.next and snap.tasks and len(snap.values["steps"]) == 2
        r = agent.resume("t-gap")
        assert r.success and [s.action for s in r.trajectory] == walk


def test_memory_and_tools_carry_over_between_episodes(evolvent_home: Path) -> None:
    memory = MemoryStore.in_memory(HashingEmbedder(), episodic=EpisodicParams(epsilon=0.0))
    env = ToyEnv(seed=4)
    llm = follow_walkthrough(env)
    with make_agent(evolvent_home, llm, memory=memory) as agent:
        first = agent.run(ToyEnv(seed=4))
        assert first.success and first.memories_used == []
        second = agent.run(ToyEnv(seed=4))
        # The first episode was retrieved, shown, and reinforced after the win.
        assert second.memories_used == first.memories_written[:1]
        assert "Past episodes:" in llm.prompts[-2] or any(
            "Past episodes:" in p for p in llm.prompts
        )
        rec = memory.get(first.memories_written[0])
        assert rec is not None and rec.q == pytest.approx(0.3)
        # Two wins with the same procedure: a macro tool was mined.
        assert second.tools_written
        third = agent.run(ToyEnv(seed=4))
        assert third.success and third.tools_used
        tool_steps = [s for s in third.trajectory if s.tool]
        assert len(tool_steps) >= 2  # one tool call expanded into several actions
        assert third.steps < len(env.walkthrough)
        stats = agent.toolsmith.registry.get(third.tools_used[0])
        assert stats is not None and stats.uses >= 1


def test_free_text_task(evolvent_home: Path) -> None:
    llm = ScriptedLLM(["1. add the numbers", "4"])
    with make_agent(evolvent_home, llm) as agent:
        r = agent.run("What is 2 + 2? Answer with a number.")
    assert r.env == "text" and r.steps == 1
    assert r.trajectory[0].action == "4"
    assert not r.success  # nothing verified it


def test_what_run_is_given_is_checked_before_anything_is_played(evolvent_home: Path) -> None:
    llm = ScriptedLLM([])  # any LLM call would fail the test
    with make_agent(evolvent_home, llm) as agent:
        # One word naming a known family is an environment id, also when misspelt.
        with pytest.raises(UnknownEnvError, match="unknown environment 'textworld:cookin'"):
            agent.run("textworld:cookin")
        with pytest.raises(UnknownEnvError, match="valid alfworld ids"):
            agent.run("alfworld:pick")
        with pytest.raises(ConfigError, match="the task must not be blank"):
            agent.run("  ")
        with pytest.raises(TypeError, match="an environment id, an Env or a task text, not int"):
            agent.run(42)  # type: ignore[arg-type]
    assert llm.calls == []


def test_step_memory_proposes_and_follow_policy_acts(
    evolvent_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = MemoryStore.in_memory(HashingEmbedder())
    env = ToyEnv(seed=6)
    # The per-state action memory (the step-value function has its own test below).
    s = settings(evolvent_home, **{"memory.action_policy": "follow", "memory.step_values": False})
    with Agent(s, llm=follow_walkthrough(env), memory=store, embedder=store.embedder) as agent:
        assert agent.run(ToyEnv(seed=6)).success
    assert store.actions.count() == len(env.walkthrough)

    # A useless LLM: on its own it only ever looks around.
    lost = ScriptedLLM(responder=lambda k, p, o: "look" if k == "choose" else "ok")
    prompts: list[str] = []
    make = executor_module.executor_prompt

    def counted(**kw: Any) -> str:
        prompts.append(make(**kw))
        return prompts[-1]

    monkeypatch.setattr(executor_module, "executor_prompt", counted)
    with Agent(s, llm=lost, memory=store, embedder=store.embedder) as agent:
        r = agent.run(ToyEnv(seed=6))
    assert r.success, [st.action for st in r.trajectory]
    assert {st.source for st in r.trajectory} == {"memory"}
    assert all(st.memory_ids for st in r.trajectory)
    assert not [c for c in lost.calls if c.kind == "choose"]
    assert prompts == []  # a step the memory takes asks the LLM nothing: no prompt is made
    monkeypatch.undo()

    # Policy "llm": the proposals are shown to the LLM, which still decides.
    shown = ScriptedLLM(responder=lambda k, p, o: "look" if k == "choose" else "ok")
    s_llm = settings(evolvent_home, **{"memory.step_values": False})
    with Agent(s_llm, llm=shown, memory=store, embedder=store.embedder) as a:
        r = a.run(ToyEnv(seed=6), max_steps=2)
    assert "Memory suggests: " + env.walkthrough[0] in shown.prompts[1]
    assert r.trajectory[0].source == "llm" and r.trajectory[0].action == "look"


def test_use_tools_off_neither_offers_nor_mines(evolvent_home: Path) -> None:
    env = ToyEnv(seed=4)
    store = MemoryStore.in_memory(HashingEmbedder())
    s = settings(evolvent_home, **{"agent.use_tools": False})
    llm = follow_walkthrough(env)
    with Agent(s, llm=llm, memory=store, embedder=store.embedder) as agent:
        results = [agent.run(ToyEnv(seed=4)) for _ in range(3)]
        assert agent.toolsmith.registry.list_tools() == []
    assert all(r.success and not r.tools_used and not r.tools_written for r in results)
    assert not any(TOOL_PREFIX in p for p in llm.prompts)


def test_notebook_gate_replays_failures_with_the_real_agent(evolvent_home: Path) -> None:
    """A batch of failures is labelled, noted, re-played twice by a frozen agent, rolled back."""
    s = settings(evolvent_home, **{"memory.notebook_batch": 2, "memory.distill_every": 2})
    store = MemoryStore.in_memory(HashingEmbedder())
    # Looks around forever: the new notes cannot help, so the gate must roll them back.
    llm = ScriptedLLM(responder=lambda k, p, o: "look" if k == "choose" else "loops on look")
    with Agent(s, llm=llm, memory=store, embedder=store.embedder) as agent:
        agent.run("toy:keys", seed=1, max_steps=3)
        assert agent.last_notebook_update is None and len(agent.notebook.pending) == 1
        before_runs = len(llm.calls)
        agent.run("toy:keys", seed=2, max_steps=3)
        update = agent.last_notebook_update
        assert update is not None
        assert update.episodes and len(update.old_outcomes) == len(update.new_outcomes) == 2
        assert update.wins == update.losses == 0 and not update.kept
        assert store.notes.count() == 0  # rolled back
        # The re-runs really played: 2 tasks x (old notes, new notes) x 3 steps each.
        replay_chooses = [c for c in llm.calls[before_runs:] if c.kind == "choose"]
        assert len(replay_chooses) >= 3 + 4 * 3
        # Re-runs learn nothing: only the two real episodes are in memory.
        assert store.stats()["episode"] <= 2


def test_notebook_gate_replays_with_the_agents_step_values(
    evolvent_home: Path, tmp_path: Path
) -> None:
    """The re-runs choose actions as the agent does: with its learned step values (frozen),
    not with the LLM alone, which under the follow policy never chooses."""
    from benchmarks.tools_bench import demonstrate, walkthrough

    s = settings(
        evolvent_home,
        **{
            "memory.notebook_batch": 2,
            "memory.distill_every": 0,
            "memory.action_policy": "follow",
            "agent.use_tools": False,
        },
    )
    store = MemoryStore.in_memory(HashingEmbedder())
    walks = {seed: walkthrough("toy:keys", seed, tmp_path) for seed in range(5)}
    assert demonstrate(store.values, "toy:keys", walks, tmp_path) == 5
    # On its own this LLM only looks around, so it would lose every re-run.
    llm = ScriptedLLM(responder=lambda k, p, o: "look" if k == "choose" else "ok")
    with Agent(s, llm=llm, memory=store, embedder=store.embedder) as agent:
        # Two steps cannot win: two failures, a full batch.
        first = agent.run("toy:keys", seed=100, max_steps=2)
        second = agent.run("toy:keys", seed=101, max_steps=2)
        update = agent.last_notebook_update
    assert not first.success and not second.success
    assert update is not None and len(update.old_outcomes) == 2
    # The values, not the LLM, played the re-runs (the learning episodes' own steps were
    # the values' too), and with the whole step budget they win.
    assert not [c for c in llm.calls if c.kind == "choose"]
    assert any(update.old_outcomes) and update.old_outcomes == update.new_outcomes
    assert not update.kept and store.notes.count() == 0


def test_notebook_gate_judges_both_replays_on_one_snapshot_of_the_values(
    evolvent_home: Path, tmp_path: Path
) -> None:
    """Values learned between the two re-plays (another run of a REST server) must not
    decide between the old and the new notes: both act on the snapshot taken first."""
    from benchmarks.tools_bench import demonstrate, walkthrough

    s = settings(
        evolvent_home,
        **{"memory.notebook_batch": 1, "memory.distill_every": 0, "agent.use_tools": False},
    )
    store = MemoryStore.in_memory(HashingEmbedder())
    llm = ScriptedLLM(responder=lambda k, p, o: "look" if k == "choose" else "ok")
    seen: list[object] = []
    with Agent(s, llm=llm, memory=store, embedder=store.embedder) as agent:
        replay = agent._rerun_with_notes

        def learning_between(
            batch: list[FailureCase], view: NotesView, values: ValueSnapshot | None = None
        ) -> list[bool]:
            seen.append(values)
            out = replay(batch, view, values)
            walks = {len(seen): walkthrough("toy:keys", len(seen), tmp_path)}
            demonstrate(store.values, "toy:keys", walks, tmp_path)  # memory learns meanwhile
            return out

        agent._rerun_with_notes = learning_between  # type: ignore[method-assign]
        before = store.values.episodes()
        agent.run("toy:keys", seed=100, max_steps=2)
    assert len(seen) == 2 and seen[0] is seen[1]
    assert isinstance(seen[0], ValueSnapshot) and seen[0].episodes == before + 1
    assert store.values.episodes() == before + 3


def test_an_agent_given_values_acts_on_them(evolvent_home: Path, tmp_path: Path) -> None:
    from benchmarks.tools_bench import demonstrate, walkthrough

    taught = MemoryStore.in_memory(HashingEmbedder())
    walks = {seed: walkthrough("toy:keys", seed, tmp_path) for seed in range(5)}
    demonstrate(taught.values, "toy:keys", walks, tmp_path)
    s = settings(
        evolvent_home,
        **{"agent.learn": False, "memory.action_policy": "follow", "agent.use_tools": False},
    )
    empty = MemoryStore.in_memory(HashingEmbedder())
    llm = ScriptedLLM(responder=lambda k, p, o: "look" if k == "choose" else "ok")
    snap = taught.values.snapshot()
    with Agent(s, llm=llm, memory=empty, embedder=empty.embedder, values=snap) as agent:
        results = [agent.run("toy:keys", seed=seed) for seed in range(100, 106)]
    assert not [c for c in llm.calls if c.kind == "choose"]
    assert any(r.success for r in results)
    assert {st.source for r in results for st in r.trajectory} == {"memory"}


def test_successes_are_distilled_into_experiences(evolvent_home: Path) -> None:
    s = settings(evolvent_home, **{"memory.distill_every": 2, "agent.use_tools": False})
    store = MemoryStore.in_memory(HashingEmbedder())
    env = ToyEnv(seed=4)
    with Agent(s, llm=follow_walkthrough(env), memory=store, embedder=store.embedder) as agent:
        assert agent.run(ToyEnv(seed=4)).success
        assert store.experiences.count() == 0
        assert agent.run(ToyEnv(seed=4)).success
    rows = [r for r in store.export() if r["kind"] == "experience"]
    assert rows, "two successes of the same task yield a workflow"
    assert any(r["meta"].get("type") == "workflow" for r in rows)
    assert all(r["provenance"]["verifier"] == "distilled" for r in rows)


def _checkpoints(db: Path, thread_id: str) -> int:
    with sqlite3.connect(db) as conn:
        (n,) = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = ?", (thread_id,)
        ).fetchone()
    return int(n)


@pytest.mark.parametrize("durability", ["sync", "async", "exit"])
def test_each_durability_plays_the_same_and_resumes_after_an_error(
    evolvent_home: Path, durability: str
) -> None:
    """``agent.durability`` changes when checkpoints are written, not what is played: the
    same trajectory, and an episode stopped by an error (here a simulated kill raised in
    the LLM call) resumes to the same end."""
    env = ToyEnv(seed=5)
    walk = env.walkthrough
    s = settings(evolvent_home, **{"agent.durability": durability})
    memory = MemoryStore.in_memory(HashingEmbedder())
    seen: list[int] = []
    with Agent(s, llm=follow_walkthrough(env), embedder=memory.embedder, memory=memory) as agent:
        db = agent.settings.checkpoint_path

        def during(step: object) -> None:
            seen.append(_checkpoints(db, "t-whole"))

        whole = agent.run(env, thread_id="t-whole", on_step=during)
    killer = follow_walkthrough(ToyEnv(seed=5), kill_at=2)
    with (
        Agent(s, llm=killer, embedder=memory.embedder, memory=memory) as agent,
        pytest.raises(Killed),
    ):
        agent.run(ToyEnv(seed=5), thread_id="t-stop")
    assert whole.success and [st.action for st in whole.trajectory] == walk
    if durability == "exit":
        # Nothing is written while the episode runs: a SIGKILL now would leave no checkpoint,
        # and the episode would be played again from its start.
        assert seen == [0] * len(walk) and _checkpoints(db, "t-whole") == 1
    elif durability == "sync":
        # Each step's checkpoint is on disk before the next step is reported.
        assert seen[-1] >= len(walk) and _checkpoints(db, "t-whole") > len(walk)
    else:
        # "async" writes checkpoints beside the play, so a step can be reported before its
        # checkpoint lands (what was seen only grows); all of them are written by the end.
        assert seen == sorted(seen) and _checkpoints(db, "t-whole") > len(walk)
    with make_agent(evolvent_home, follow_walkthrough(ToyEnv(seed=5))) as agent:
        assert agent.has_checkpoint("t-stop")
        r = agent.resume("t-stop")
    assert r.success and [st.action for st in r.trajectory] == walk


def test_merge_appends_the_appended_channels_and_replaces_the_rest() -> None:
    assert {"steps", "reflections"} == APPENDED
    first: dict[str, Any] = {"steps": [1], "step_count": 1, "observation": "a"}
    second: dict[str, Any] = {"steps": [2], "step_count": 2, "reflect_mid": False}
    assert merge(first, second) == {
        "steps": [1, 2],
        "step_count": 2,
        "observation": "a",
        "reflect_mid": False,
    }
    assert merge({}, {"reflections": ["r"]}) == {"reflections": ["r"]}
    assert first == {"steps": [1], "step_count": 1, "observation": "a"}  # not changed


def _looping(home: Path, per_node: int) -> tuple[EpisodeResult, list[int], int]:
    """An episode that loops on "look" until its step limit (so the stall detector sends
    it to the reflector twice on the way): the result, the step indices reported, and the
    checkpoints written."""
    llm = ScriptedLLM(responder=lambda k, p, o: "look" if k == "choose" else "ok")
    store = MemoryStore.in_memory(HashingEmbedder())
    s = settings(
        home / str(per_node), **{"agent.skip_no_ops": False, "agent.steps_per_node": per_node}
    )
    reported: list[int] = []
    with Agent(s, llm=llm, embedder=store.embedder, memory=store) as agent:
        r = agent.run(
            ToyEnv(seed=1),
            max_steps=14,
            thread_id="t",
            on_step=lambda st: reported.append(st.index),
        )
        written = _checkpoints(agent.settings.checkpoint_path, "t")
    return r, reported, written


@pytest.mark.parametrize("per_node", [3, 100])
def test_steps_per_node_plays_and_reports_the_same_episode_with_fewer_checkpoints(
    evolvent_home: Path, per_node: int
) -> None:
    one, one_reported, one_written = _looping(evolvent_home, 1)
    many, reported, written = _looping(evolvent_home, per_node)
    assert len(one.reflections) == 2  # the stalls interrupted the executor's runs
    keep = {"reflections", "stop_reason", "steps", "score"}
    assert many.model_dump(include=keep) == one.model_dump(include=keep)
    played = {"index", "action", "observation", "source", "reward", "error"}
    assert [st.model_dump(include=played) for st in many.trajectory] == [
        st.model_dump(include=played) for st in one.trajectory
    ]
    assert len(many.memories_written) == len(one.memories_written)
    assert reported == one_reported == list(range(14))
    assert written < one_written


def test_a_run_of_steps_stopped_by_an_error_resumes_to_the_same_end(
    evolvent_home: Path,
) -> None:
    """A kill in the middle of a run of steps loses that run's steps: the resume plays them
    again and ends as an uninterrupted episode does."""
    walk = ToyEnv(seed=5).walkthrough
    s = settings(evolvent_home, **{"agent.steps_per_node": 50})
    memory = MemoryStore.in_memory(HashingEmbedder())
    killer = follow_walkthrough(ToyEnv(seed=5), kill_at=2)
    with (
        Agent(s, llm=killer, embedder=memory.embedder, memory=memory) as agent,
        pytest.raises(Killed),
    ):
        agent.run(ToyEnv(seed=5), thread_id="t-stop")
    llm = follow_walkthrough(ToyEnv(seed=5))
    with Agent(s, llm=llm, embedder=memory.embedder, memory=memory) as agent:
        r = agent.resume("t-stop")
    assert r.success and [st.action for st in r.trajectory] == walk
    assert [st.index for st in r.trajectory] == list(range(len(walk)))
