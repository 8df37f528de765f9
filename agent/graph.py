"""``build_graph()``: the one place where the agent's state machine is wired."""

from __future__ import annotations

from typing import Any, NamedTuple

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from agent import nodes, routing
from agent.state import AgentState, EpisodeContext
from agent.stepping import stepping
from agent.timing import NodeFn, accounted

CompiledAgent = CompiledStateGraph[AgentState, EpisodeContext, AgentState, AgentState]


class NodeSet(NamedTuple):
    """The functions behind the graph's four nodes."""

    planner: NodeFn
    executor: NodeFn
    reflector: NodeFn
    tool_synthesizer: NodeFn


AGENT_NODES = NodeSet(nodes.planner, nodes.executor, nodes.reflector, nodes.tool_synthesizer)


def build_graph(
    checkpointer: BaseCheckpointSaver[Any] | None = None, node_set: NodeSet = AGENT_NODES
) -> CompiledAgent:
    """planner -> executor (loops) -> reflector (-> executor on stalls) -> tool_synthesizer.

    ``node_set``: the agent's nodes; ``benchmarks.graph_floor`` wires nodes that do nothing
    into the same machine to measure what the machine itself costs."""
    g = StateGraph(AgentState, context_schema=EpisodeContext)
    g.add_node("planner", accounted(node_set.planner))
    g.add_node("executor", accounted(stepping(node_set.executor)))
    g.add_node("reflector", accounted(node_set.reflector))
    g.add_node("tool_synthesizer", accounted(node_set.tool_synthesizer))
    g.add_edge(START, "planner")
    g.add_edge("planner", "executor")
    g.add_conditional_edges("executor", routing.after_executor, ["executor", "reflector"])
    g.add_conditional_edges("reflector", routing.after_reflector, ["executor", "tool_synthesizer"])
    g.add_edge("tool_synthesizer", END)
    return g.compile(checkpointer=checkpointer)


def recursion_limit(max_steps: int, max_reflections: int) -> int:
    """Super-steps an episode may need: one per executor step plus the fixed nodes."""
    return max_steps + 2 * max_reflections + 10
