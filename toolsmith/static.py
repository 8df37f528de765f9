"""Static checks of LLM-written code, with ``ast``, before it ever runs.

Deliberately strict: imports only from a short list of pure modules, no builtins that reach
files, processes, the interpreter or introspection, no dunder names or attributes (the usual
sandbox escapes: ``().__class__.__subclasses__()``), no frame or code-object attributes. The
sandbox is the real boundary; this rejects junk and obvious attempts with a readable reason.
"""

from __future__ import annotations

import ast

ALLOWED_IMPORTS = frozenset(
    {"re", "json", "math", "itertools", "collections", "string", "functools", "operator"}
    | {"difflib", "typing"}
)
FORBIDDEN_NAMES = frozenset(
    {"eval", "exec", "compile", "open", "__import__", "input", "globals", "locals", "vars"}
    | {"getattr", "setattr", "delattr", "breakpoint", "memoryview", "help", "exit", "quit"}
    | {"os", "sys", "subprocess", "socket", "importlib", "builtins", "ctypes", "shutil"}
    | {"pathlib", "signal", "threading", "multiprocessing", "urllib", "http", "pickle"}
    | {"marshal", "gc", "inspect", "io", "asyncio"}
)
FORBIDDEN_ATTRS = frozenset(
    {"gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "f_globals", "f_locals"}
    | {"f_back", "f_builtins", "f_code", "tb_frame", "co_code", "func_globals", "mro"}
    | {"format_map"}
)
MAX_CODE_CHARS = 8000
MAX_NODES = 3000


def _dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def static_problems(source: str, *, tests: bool = False) -> list[str]:
    """Reasons ``source`` is not accepted (empty when it is). ``tests``: it is the test code
    (``test_*`` functions with asserts; may ``from tool import run``), else the tool (must
    define ``run(observation, admissible)`` at top level)."""
    what = "test code" if tests else "code"
    if not source.strip():
        return [f"{what} is empty"]
    if len(source) > MAX_CODE_CHARS:
        return [f"{what} is longer than {MAX_CODE_CHARS} characters"]
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [f"{what} does not parse: {e.msg} (line {e.lineno})"]
    problems: list[str] = []
    nodes = list(ast.walk(tree))
    if len(nodes) > MAX_NODES:
        problems.append(f"{what} is too large ({len(nodes)} syntax nodes)")
    allowed = ALLOWED_IMPORTS | ({"tool"} if tests else set())
    for node in nodes:
        problem = _node_problem(node, allowed)
        if problem and problem not in problems:
            problems.append(problem)
    problems += _shape_problems(tree, tests)
    return problems


def tool_problems(code: str | None, tests: str | None, *, tests_required: bool = True) -> list[str]:
    """Reasons a code tool's code and tests are not accepted (empty when they are): the
    tests are checked when there are any, or always when ``tests_required`` (a new tool)."""
    problems = static_problems(code or "")
    if tests or tests_required:
        problems += static_problems(tests or "", tests=True)
    return problems


def _node_problem(node: ast.AST, allowed: frozenset[str] | set[str]) -> str | None:
    if isinstance(node, ast.Import):
        bad = [a.name for a in node.names if a.name.split(".")[0] not in allowed]
        return f"imports {', '.join(bad)} (allowed: {', '.join(sorted(allowed))})" if bad else None
    if isinstance(node, ast.ImportFrom):
        mod = node.module or ""
        if node.level or mod.split(".")[0] not in allowed:
            return f"imports from {mod or '.'} (allowed: {', '.join(sorted(allowed))})"
        return None
    if isinstance(node, ast.Name):
        if node.id in FORBIDDEN_NAMES:
            return f"uses {node.id!r}"
        if _dunder(node.id):
            return f"uses the dunder name {node.id!r}"
    if isinstance(node, ast.Attribute):
        if _dunder(node.attr) or node.attr.startswith("_"):
            return f"accesses the private attribute {node.attr!r}"
        if node.attr in FORBIDDEN_ATTRS:
            return f"accesses the attribute {node.attr!r}"
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and "__" in node.value:
        return "a string mentions a dunder name (format-string introspection)"
    if isinstance(node, ast.Global | ast.Nonlocal):
        return "uses global/nonlocal"
    if isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncFor | ast.AsyncWith):
        return "uses async code"
    if isinstance(node, ast.FunctionDef | ast.Lambda | ast.ClassDef):
        name = getattr(node, "name", "")
        if _dunder(name):
            return f"defines the dunder name {name!r}"
    return None


def _shape_problems(tree: ast.Module, tests: bool) -> list[str]:
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    if tests:
        test_funcs = [f for name, f in funcs.items() if name.startswith("test_")]
        if not test_funcs:
            return ["tests define no top-level test_ function"]
        out = []
        for f in test_funcs:
            if f.args.args and len(f.args.defaults) < len(f.args.args):
                out.append(f"{f.name} takes arguments")
        if not any(isinstance(n, ast.Assert) for f in test_funcs for n in ast.walk(f)):
            out.append("tests contain no assert")
        return out
    run = funcs.get("run")
    if run is None:
        return ["code defines no top-level function run(observation, admissible)"]
    positional = run.args.posonlyargs + run.args.args
    required = len(positional) - len(run.args.defaults)
    if (len(positional) < 2 and run.args.vararg is None) or required > 2:
        return ["run must accept (observation, admissible)"]
    return []
