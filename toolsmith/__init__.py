"""Tools the agent builds, validates, documents and reuses."""

from toolsmith.codegen import CodeToolDraft, propose_code_tool, trajectory_summary
from toolsmith.convergence import ConvergenceBatch, ConvergenceCounter
from toolsmith.docs import classify, refine_doc
from toolsmith.mining import MinedMacro, macro_name, mine_macros
from toolsmith.models import Tool, ToolFeedback, ToolProvenance, ToolUse, Trajectory
from toolsmith.params import MinedTemplate, mine_templates, resolve_step, unify
from toolsmith.registry import InProcessToolRegistry, ToolRegistry
from toolsmith.replay import EnvFactory, MacroReplay, replay_macro, replay_score
from toolsmith.sandboxed import CodeToolResult, call_code_tool, run_code_tool, run_tests
from toolsmith.sqlite_registry import SqliteToolRegistry, ToolRegistryError
from toolsmith.static import static_problems
from toolsmith.synthesizer import Toolsmith, ToolsmithConfig
from toolsmith.validate import Verdict, validate_code_tool, validate_macro

__all__ = [
    "CodeToolDraft",
    "CodeToolResult",
    "ConvergenceBatch",
    "ConvergenceCounter",
    "EnvFactory",
    "InProcessToolRegistry",
    "MacroReplay",
    "MinedMacro",
    "MinedTemplate",
    "SqliteToolRegistry",
    "Tool",
    "ToolFeedback",
    "ToolProvenance",
    "ToolRegistry",
    "ToolRegistryError",
    "ToolUse",
    "Toolsmith",
    "ToolsmithConfig",
    "Trajectory",
    "Verdict",
    "call_code_tool",
    "classify",
    "macro_name",
    "mine_macros",
    "mine_templates",
    "propose_code_tool",
    "refine_doc",
    "replay_macro",
    "replay_score",
    "resolve_step",
    "run_code_tool",
    "run_tests",
    "static_problems",
    "trajectory_summary",
    "unify",
    "validate_code_tool",
    "validate_macro",
]
