from __future__ import annotations

from agent.routing import after_executor, after_reflector
from agent.stall import describe_loop, detect_stall
from agent.state import AgentState, StepRecord


def _step(i: int, action: str | None, reward: float = 0.0) -> StepRecord:
    return StepRecord(
        index=i,
        action=action,
        observation="",
        reward=reward,
        score=0.0,
        done=False,
        tool=None,
        error=None,
        source="llm",
        memory_ids=[],
        llm_s=0.0,
        env_s=0.0,
        tokens=0,
    )


def test_routing_is_pure_and_total() -> None:
    assert after_executor(AgentState()) == "executor"
    assert after_executor(AgentState(stop_reason="step_limit")) == "reflector"
    assert after_executor(AgentState(reflect_mid=True)) == "reflector"
    assert after_reflector(AgentState(finished=True)) == "tool_synthesizer"
    assert after_reflector(AgentState(finished=False)) == "executor"


def test_stall_on_loop_not_on_progress() -> None:
    loop = [_step(i, "open fridge" if i % 2 else "close fridge") for i in range(6)]
    assert detect_stall(loop, 6, 0, 2, -1)
    assert not detect_stall(loop, 6, 2, 2, -1)  # out of reflections
    assert not detect_stall(loop, 6, 0, 2, 3)  # reflected inside this window already
    varied = [_step(i, f"go {i}") for i in range(6)]
    assert not detect_stall(varied, 6, 0, 2, -1)
    rewarded = [*loop[:5], _step(5, "take key", reward=1.0)]
    assert not detect_stall(rewarded, 6, 0, 2, -1)
    assert "'open fridge' x3" in describe_loop(loop, 6)
