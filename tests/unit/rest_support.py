"""Helpers for the REST API tests: a served app with fakes, two API keys, a gated LLM."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from agent.llm.base import LLMClient
from agent.llm.scripted import Answer, CallKind, ScriptedLLM
from agent.server.app import create_app
from agent.server.client import EvolventClient
from agent.server.config import ServerConfig
from agent.server.deps import ServerDeps
from agent.server.testing import fake_deps, toy_llm, toy_policy
from benchmarks.envs.toy import ToyEnv

KEYS = {"key-alpha": "alpha", "key-beta": "beta"}
A, B = "key-alpha", "key-beta"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Gate:
    """An LLM whose every action waits for ``open()``: the test decides when steps happen."""

    def __init__(self, policy: str = "toy") -> None:
        self.permits = threading.Semaphore(0)
        self.policy = policy

    def open(self, n: int = 1) -> None:
        for _ in range(n):
            self.permits.release()

    def llm(self) -> LLMClient:
        def respond(
            kind: CallKind, prompt: str, options: Sequence[str] | type[BaseModel] | None
        ) -> Answer:
            if kind == "choose":
                if not self.permits.acquire(timeout=30):
                    raise AssertionError("the test never opened the gate")
                if self.policy == "look":  # "look", else (it changed nothing) the first option
                    assert isinstance(options, list)
                    return "look" if "look" in options else options[0]
            return toy_policy(kind, prompt, options)

        return ScriptedLLM(responder=respond)


@dataclass
class Served:
    app: FastAPI
    http: TestClient
    deps: ServerDeps
    a: EvolventClient
    b: EvolventClient


@contextmanager
def serve(
    home: Path,
    config: ServerConfig | None = None,
    llm_factory: Callable[[], LLMClient] = toy_llm,
    gate: Gate | None = None,
) -> Iterator[Served]:
    deps = fake_deps(home, KEYS, config, llm_factory=gate.llm if gate else llm_factory)
    app = create_app(deps)
    with contextlib.closing(deps), TestClient(app) as http:
        try:
            yield Served(
                app,
                http,
                deps,
                EvolventClient("http://testserver", A, http=http),
                EvolventClient("http://testserver", B, http=http),
            )
        finally:
            if gate is not None:
                gate.open(1000)  # let blocked workers finish, or shutdown waits for them


def long_seed(min_steps: int = 4) -> int:
    """A toy seed whose shortest solution takes at least ``min_steps`` actions."""
    return next(s for s in range(1000) if len(ToyEnv(s).walkthrough) >= min_steps)
