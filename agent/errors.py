"""Errors and typed stop conditions.

``EvolventError`` and its subclasses are user-facing: the CLI prints their message as one
line (no stack trace). ``StopCondition`` subclasses end an episode cleanly; the graph turns
them into a ``stop_reason`` instead of crashing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class EvolventError(Exception):
    """An error caused by input or the environment, explained in one line."""


class ConfigError(EvolventError):
    """Invalid settings, config file or flag value."""


class UnknownEnvError(EvolventError):
    """An environment id that does not exist."""


class EndpointUnreachable(EvolventError):
    """The LLM endpoint cannot be reached."""

    def __init__(self, url: str, detail: str = "") -> None:
        self.url = url
        hint = (
            "start the server (e.g. `vllm serve MODEL --port 8000`), fix "
            "--llm-url / EVOLVENT_LLM__BASE_URL, or unset it to use the embedded backbone"
        )
        msg = f"cannot reach the LLM endpoint at {url}"
        if detail:
            msg += f" ({detail})"
        super().__init__(f"{msg}: {hint}")


class LLMRequestError(EvolventError):
    """The endpoint answered, but refused the request (4xx, or 5xx after all retries)."""


class EmbeddedServerError(EvolventError):
    """The embedded llama.cpp server could not be started."""


class InvalidLLMOutput(EvolventError):
    """The LLM kept answering something that does not parse, after all retries."""


class EnvProtocolError(EvolventError):
    """An ``Env`` object given to the agent broke the environment protocol (a wrong return
    type, a non-finite number)."""


class ResumeError(EvolventError):
    """A thread that cannot be resumed (unknown id, already finished, env mismatch)."""


class MemoryLocked(EvolventError):
    """Another process has the embedded memory store open for writing."""

    def __init__(self, path: str, pid: int | None = None) -> None:
        self.path = path
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        # The server must own the directory alone, hence "once it has finished".
        super().__init__(
            f"memory store {path} is open for writing by {holder}; to share one memory between "
            f"processes, once it has finished run a Chroma server (`chroma run --path {path} "
            "--port 8000`) and point every process at it with "
            "EVOLVENT_MEMORY__URL=http://127.0.0.1:8000 (or MemoryStore.open(url=...))"
        )


def validation_message(err: Mapping[str, Any]) -> str:
    """One pydantic error's message, without the ``Value error, `` that pydantic puts before
    what a validator raised."""
    return str(err.get("msg", "invalid")).removeprefix("Value error, ")


def os_problem(e: OSError) -> str:
    """``cannot use PATH: No such file or directory (check EVOLVENT_HOME ...)``: a path the
    settings or a flag named that the system refused, in one line."""
    return (
        f"cannot use {e.filename}: {e.strerror or e} (check EVOLVENT_HOME, the paths in the "
        "settings and the command's path options)"
    )


class StopCondition(Exception):
    """Ends an episode early; carries the ``stop_reason`` recorded in the result."""

    reason = "stopped"


class StepLimitReached(StopCondition):
    reason = "step_limit"


class TokenBudgetExhausted(StopCondition):
    reason = "token_budget"

    def __init__(self, used: int, budget: int) -> None:
        self.used = used
        self.budget = budget
        super().__init__(f"token budget exhausted: {used} of {budget} tokens used")
