"""Pure routing functions: they read the state and name the next node."""

from __future__ import annotations

from typing import Literal

from agent.state import AgentState


def after_executor(state: AgentState) -> Literal["executor", "reflector"]:
    if state.get("stop_reason") is not None or state.get("reflect_mid"):
        return "reflector"
    return "executor"


def after_reflector(state: AgentState) -> Literal["executor", "tool_synthesizer"]:
    return "tool_synthesizer" if state.get("finished") else "executor"
