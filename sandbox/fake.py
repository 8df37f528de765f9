"""A scripted sandbox for tests of code that uses one: no process is started.

It answers from a queue of results or from a function of the call, and records every call,
speaking the same interface as the real backends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import ClassVar

from sandbox.base import RunResult, Sandbox, SandboxLimits


@dataclass(frozen=True)
class FakeCall:
    argv: list[str]
    files: dict[str, bytes]
    env: dict[str, str]
    limits: SandboxLimits


Responder = Callable[[FakeCall], RunResult]


class FakeSandbox(Sandbox):
    """Returns scripted ``RunResult``s; ``calls`` holds what it was asked to run."""

    name: ClassVar[str] = "fake"

    def __init__(
        self,
        replies: Iterable[RunResult | Responder] = (),
        limits: SandboxLimits | None = None,
    ) -> None:
        super().__init__(limits)
        self.replies: deque[RunResult | Responder] = deque(replies)
        self.calls: list[FakeCall] = []

    @staticmethod
    def result(stdout: str = "", exit_code: int = 0, stderr: str = "") -> RunResult:
        """A finished run with the given output, for scripting."""
        return RunResult(
            exit_code=exit_code, stdout=stdout, stderr=stderr, wall_s=0.0, backend="fake"
        )

    def _execute(
        self, argv: list[str], files: dict[str, bytes], env: dict[str, str], limits: SandboxLimits
    ) -> RunResult:
        call = FakeCall(argv, files, env, limits)
        self.calls.append(call)
        if not self.replies:
            raise AssertionError(f"FakeSandbox has no scripted reply for {argv!r}")
        reply = self.replies.popleft()
        return reply(call) if callable(reply) else reply
