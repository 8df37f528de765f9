"""Tools the agent builds, validates, documents and reuses."""

from toolsmith.mining import MinedMacro, macro_name, mine_macros
from toolsmith.models import Tool, ToolProvenance, ToolUse
from toolsmith.registry import InProcessToolRegistry, ToolRegistry
from toolsmith.synthesizer import ConvergenceCounter, Toolsmith

__all__ = [
    "ConvergenceCounter",
    "InProcessToolRegistry",
    "MinedMacro",
    "Tool",
    "ToolProvenance",
    "ToolRegistry",
    "ToolUse",
    "Toolsmith",
    "macro_name",
    "mine_macros",
]
