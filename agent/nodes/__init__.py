"""Graph nodes: plain functions of (state, context) returning only what changed."""

from agent.nodes.executor import executor
from agent.nodes.planner import planner
from agent.nodes.reflector import reflector
from agent.nodes.tool_synthesizer import tool_synthesizer

__all__ = ["executor", "planner", "reflector", "tool_synthesizer"]
