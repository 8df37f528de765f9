"""``build_graph()``: the one place where the agent's state machine is wired."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent import nodes, routing
from agent.state import AgentState, EpisodeContext
from agent.timing import accounted

CompiledAgent = CompiledStateGraph[AgentState, EpisodeContext, AgentState, AgentState]


def build_graph(checkpointer: BaseCheckpointSaver[Any] | None = None) -> CompiledAgent:
    """planner -> executor (loops) -> reflector (-> executor on stalls) -> tool_synthesizer."""
    g = StateGraph(AgentState, context_schema=EpisodeContext)
    g.add_node("planner", accounted(nodes.planner))
    g.add_node("executor", accounted(nodes.executor))
    g.add_node("reflector", accounted(nodes.reflector))
    g.add_node("tool_synthesizer", accounted(nodes.tool_synthesizer))
    g.add_edge(START, "planner")
    g.add_edge("planner", "executor")
    g.add_conditional_edges("executor", routing.after_executor, ["executor", "reflector"])
    g.add_conditional_edges("reflector", routing.after_reflector, ["executor", "tool_synthesizer"])
    g.add_edge("tool_synthesizer", END)
    return g.compile(checkpointer=checkpointer)


def recursion_limit(max_steps: int, max_reflections: int) -> int:
    """Super-steps an episode may need: one per executor step plus the fixed nodes."""
    return max_steps + 2 * max_reflections + 10
