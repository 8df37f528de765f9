"""Fakes for testing and benchmarking the REST service. Not for production use.

``EVOLVENT_TEST_LLM`` (read by ``ServerDeps.from_settings``) makes a real server process play
with a scripted LLM, so tests and benchmarks can start ``python -m agent.server`` without a
model. Values: ``toy`` (instant) or ``toy-slow:SECONDS`` (each action takes SECONDS).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel

from agent.config import Settings, load_settings
from agent.errors import ConfigError
from agent.llm.base import LLMClient
from agent.llm.scripted import Answer, CallKind, ScriptedLLM
from agent.server.config import ServerConfig
from agent.server.deps import ServerDeps
from memory.embeddings import Embedder, HashingEmbedder
from memory.store import MemoryStore

_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
_ACTION_LINE = re.compile(r"^> (\S.*)$", re.MULTILINE)


def toy_policy(
    kind: CallKind, prompt: str, options: Sequence[str] | type[BaseModel] | None
) -> Answer:
    """Wins ``toy:keys`` without knowing the seed: sweep the chain of rooms (never turn back
    unless at a dead end), take the key when seen, open the chest once the key is held."""
    if kind == "complete":
        return "1. find the key\n2. open the chest"
    if kind == "structured" or not isinstance(options, list) or not options:
        return "{}"
    done: list[str] = _ACTION_LINE.findall(prompt)
    if "take key" in options:
        return "take key"
    if "open chest" in options and "take key" in done:
        return "open chest"
    moves: list[str] = sorted(str(o) for o in options if str(o).startswith("go "))
    if not moves:
        return "look" if "look" in options else str(options[0])
    last_move = next((a for a in reversed(done) if a.startswith("go ")), None)
    back = f"go {_OPPOSITE[last_move[3:]]}" if last_move and last_move[3:] in _OPPOSITE else None
    ahead = [m for m in moves if m != back]
    return ahead[0] if ahead else moves[0]


def toy_llm(delay_s: float = 0.0) -> ScriptedLLM:
    """A scripted LLM that plays ``toy_policy``; with ``delay_s`` each action is slow."""
    if delay_s <= 0:
        return ScriptedLLM(responder=toy_policy)

    def slow(
        kind: CallKind, prompt: str, options: Sequence[str] | type[BaseModel] | None
    ) -> Answer:
        if kind == "choose":
            time.sleep(delay_s)
        return toy_policy(kind, prompt, options)

    return ScriptedLLM(responder=slow)


def scripted_llm_factory(spec: str) -> Callable[[], LLMClient]:
    """``toy`` or ``toy-slow:SECONDS`` -> a factory of scripted LLMs."""
    name, _, arg = spec.partition(":")
    if name == "toy" and not arg:
        return toy_llm
    if name == "toy-slow":
        try:
            delay = float(arg or "0.2")
        except ValueError:
            raise ConfigError(
                f"bad EVOLVENT_TEST_LLM {spec!r}: expected toy-slow:SECONDS"
            ) from None
        return lambda: toy_llm(delay)
    raise ConfigError(f"unknown EVOLVENT_TEST_LLM {spec!r}; valid: toy, toy-slow:SECONDS")


def quiet_settings(home: Path, **overrides: object) -> Settings:
    """Agent settings in ``home`` with the slow between-episode learning switched off."""
    return load_settings(
        None,
        **{
            "home": str(home),
            "memory.notebook_batch": 0,
            "memory.distill_every": 0,
            **overrides,
        },
    )


def fake_deps(
    home: Path,
    api_keys: Mapping[str, str],
    config: ServerConfig | None = None,
    *,
    llm_factory: Callable[[], LLMClient] = toy_llm,
    embedder: Embedder | None = None,
    settings: Settings | None = None,
) -> ServerDeps:
    """Server dependencies with a scripted LLM and in-memory stores (one per namespace)."""
    emb = embedder or HashingEmbedder()
    s = settings or quiet_settings(home)

    def memory_factory(namespace: str) -> MemoryStore:
        # The learners' parameters of the settings, as the real server's stores have them.
        return MemoryStore.in_memory(
            emb, namespace=namespace, episodic=s.memory.episodic, values=s.memory.values
        )

    return ServerDeps(
        s,
        api_keys,
        config or ServerConfig(),
        llm_factory=llm_factory,
        memory_factory=memory_factory,
        embedder=emb,
    )
