"""``ServerDeps``: everything the REST service runs on, built once at startup.

Routes receive it (and the run manager, the caller's memory store and tool registry) through
FastAPI ``Depends``; tests build one from fakes (``agent.server.testing.fake_deps``) or swap
single dependencies with ``app.dependency_overrides``.

Ownership: one memory backend for the process (embedded Chroma allows one writing process,
and inside it one client per path), one ``MemoryStore`` and ``Toolsmith`` per namespace for
the server's lifetime, one LLM client per worker thread (a client's token meter is per
instance; the embedded llama.cpp server behind them is shared), one ``Agent`` per worker
thread and namespace (its own checkpoint connection).
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from agent.agent import Agent
from agent.config import Settings
from agent.llm.base import LLMClient
from agent.server.config import DEFAULT_NAMESPACE, ServerConfig, ServeSettings, check_auth
from agent.server.store import RunStore
from agent.stores import open_memory
from memory.embeddings import Embedder
from memory.store import MemoryStore
from toolsmith.registry import InProcessToolRegistry
from toolsmith.sqlite_registry import SqliteToolRegistry
from toolsmith.synthesizer import Toolsmith, ToolsmithConfig

log = logging.getLogger(__name__)

LLMFactory = Callable[[], LLMClient]
"""Makes one LLM client (called once per worker thread, and once for readiness probes)."""
MemoryFactory = Callable[[str], MemoryStore]
"""The memory store of a namespace (called once per namespace)."""
ToolsmithFactory = Callable[[str], Toolsmith]
"""The toolsmith (and tool registry) of a namespace (called once per namespace)."""
LLMProbe = Callable[[LLMClient, float], None]
"""Raises when the LLM endpoint behind a client does not answer within the timeout."""

TEST_LLM_ENV = "EVOLVENT_TEST_LLM"
"""Test-only: a scripted LLM for the served agent (see ``agent.server.testing``)."""


def probe_llm(client: LLMClient, timeout: float) -> None:
    """The client's cheap health check if it has one (``GET /models``), else a 1-token
    completion."""
    health = getattr(client, "health_check", None)
    if callable(health):
        health(timeout=timeout)
        return
    client.complete("ping", max_tokens=1)


class ServerDeps:
    def __init__(
        self,
        settings: Settings,
        api_keys: Mapping[str, str],
        config: ServerConfig,
        *,
        llm_factory: LLMFactory,
        memory_factory: MemoryFactory,
        embedder: Embedder,
        toolsmith_factory: ToolsmithFactory | None = None,
        llm_probe: LLMProbe = probe_llm,
        on_close: Iterable[Callable[[], None]] = (),
    ) -> None:
        """``toolsmith_factory`` default: an in-process tool registry per namespace (tests);
        ``from_settings`` passes the persistent SQLite registry beside memory."""
        check_auth(dict(api_keys), config)
        self.settings = settings
        self.config = config
        self.embedder = embedder
        self.llm_factory = llm_factory
        self.memory_factory = memory_factory
        self.toolsmith_factory = toolsmith_factory or self._in_process_toolsmith
        self.llm_probe = llm_probe
        self._keys = [(k.encode(), ns) for k, ns in api_keys.items()]
        self._on_close = list(on_close)
        self.run_store = RunStore(settings.checkpoint_path)
        self._lock = threading.Lock()
        self._stores: dict[str, MemoryStore] = {}
        self._toolsmiths: dict[str, Toolsmith] = {}
        self._llms: dict[int, LLMClient] = {}
        self._agents: dict[tuple[int, str], Agent] = {}
        self._probe_pool = ThreadPoolExecutor(1, thread_name_prefix="evolvent-probe")
        self._probe: Future[None] | None = None
        self._probe_client: LLMClient | None = None

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> ServerDeps:
        """The real thing: the configured LLM, the configured memory store, the real
        embedder. With ``EVOLVENT_TEST_LLM`` set (tests only) a scripted LLM and the hashing
        embedder stand in for the model and the embedder."""
        check_auth(settings.api_keys, settings.server)
        test_llm = os.environ.get(TEST_LLM_ENV)
        embedder: Embedder
        if test_llm:
            from agent.server.testing import scripted_llm_factory
            from memory.embeddings import HashingEmbedder

            llm_factory = scripted_llm_factory(test_llm)
            embedder = HashingEmbedder()
            log.warning("%s=%s: a scripted test LLM plays every run", TEST_LLM_ENV, test_llm)
        else:
            from agent.llm.factory import make_client
            from memory.embeddings import default_embedder

            def llm_factory() -> LLMClient:
                return make_client(settings.llm)[0]

            embedder = default_embedder()
        mcfg = settings.memory
        namespaces = sorted(set(settings.api_keys.values())) or [DEFAULT_NAMESPACE]
        # One backend for every namespace: a second embedded client on the same path in
        # this process would share (and on close, tear down) the first one's system.
        base = open_memory(settings, embedder, namespace=namespaces[0])

        def memory_factory(namespace: str) -> MemoryStore:
            return MemoryStore(base.backend, embedder, namespace, mcfg.episodic, mcfg.values)

        registries: list[SqliteToolRegistry] = []

        def toolsmith_factory(namespace: str) -> Toolsmith:
            # Tools persist beside memory, like `evolvent run`'s, so a restart keeps them.
            from benchmarks.envs.registry import make_env

            reg = SqliteToolRegistry(settings.memory_path / "tools.sqlite", embedder, namespace)
            registries.append(reg)
            return Toolsmith(
                reg,
                ToolsmithConfig(
                    sandbox=settings.sandbox.backend, code_timeout_s=settings.sandbox.timeout_s
                ),
                env_factory=lambda env_id, seed: make_env(env_id, seed, settings.games_path),
            )

        def close_registries() -> None:
            for reg in registries:
                reg.close()

        return cls(
            settings,
            settings.api_keys,
            settings.server,
            llm_factory=llm_factory,
            memory_factory=memory_factory,
            embedder=embedder,
            toolsmith_factory=toolsmith_factory,
            on_close=[close_registries, base.close],
        )

    # -- auth -------------------------------------------------------------------------

    @property
    def auth_enabled(self) -> bool:
        return not self.config.insecure_no_auth

    def namespace_for(self, key: str) -> str | None:
        """The namespace of an API key, comparing against every key in constant time."""
        given = key.encode()
        found: str | None = None
        for candidate, ns in self._keys:
            if hmac.compare_digest(candidate, given):
                found = ns
        return found

    @property
    def namespaces(self) -> list[str]:
        return sorted({ns for _, ns in self._keys}) or [DEFAULT_NAMESPACE]

    # -- per namespace ----------------------------------------------------------------

    def memory(self, namespace: str) -> MemoryStore:
        with self._lock:
            store = self._stores.get(namespace)
            if store is None:
                store = self._stores[namespace] = self.memory_factory(namespace)
            return store

    def toolsmith(self, namespace: str) -> Toolsmith:
        with self._lock:
            smith = self._toolsmiths.get(namespace)
            if smith is None:
                smith = self._toolsmiths[namespace] = self.toolsmith_factory(namespace)
            return smith

    def _in_process_toolsmith(self, namespace: str) -> Toolsmith:
        return Toolsmith(InProcessToolRegistry(self.embedder))

    def agent(self, namespace: str) -> Agent:
        """The calling worker thread's agent for ``namespace``."""
        me = threading.get_ident()
        with self._lock:
            found = self._agents.get((me, namespace))
            if found is not None:
                return found
            llm = self._llms.get(me)
        if llm is None:
            llm = self.llm_factory()
            with self._lock:
                self._llms[me] = llm
        settings = self.settings.model_copy(deep=True)
        settings.memory.namespace = namespace
        made = Agent(
            settings,
            llm=llm,
            memory=self.memory(namespace),
            toolsmith=self.toolsmith(namespace),
            embedder=self.embedder,
        )
        with self._lock:
            self._agents[(me, namespace)] = made
        return made

    # -- readiness --------------------------------------------------------------------

    def warm_up(self) -> None:
        """Start the readiness probe now (it starts the embedded LLM server, if any)."""
        self._start_probe()

    def check_llm(self) -> str:
        """``ok`` or why the LLM endpoint is not ready."""
        future = self._start_probe()
        try:
            future.result(timeout=self.config.readiness_timeout_s)
        except FutureTimeout:
            return f"no answer within {self.config.readiness_timeout_s:g} s"
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        return "ok"

    def check_stores(self) -> str:
        """``ok`` or why the run database or a namespace's memory store does not answer."""
        try:
            self.run_store.ping()
            for ns in self.namespaces:
                self.memory(ns).stats()
        except Exception as e:
            return f"{type(e).__name__}: {e}"
        return "ok"

    def _start_probe(self) -> Future[None]:
        with self._lock:
            if self._probe is None or self._probe.done():
                self._probe = self._probe_pool.submit(self._run_probe)
            return self._probe

    def _run_probe(self) -> None:
        if self._probe_client is None:
            self._probe_client = self.llm_factory()
        self.llm_probe(self._probe_client, self.config.readiness_timeout_s)

    # -- shutdown ---------------------------------------------------------------------

    def close(self) -> None:
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            agents = list(self._agents.values())
            llms = list(self._llms.values())
            self._agents.clear()
            self._llms.clear()
        if self._probe_client is not None:
            llms.append(self._probe_client)
        for closer in [*(a.close for a in agents), *(c.close for c in llms)]:
            _quietly(closer)
        # The stores came from memory_factory: whoever made that closes them (on_close).
        for closer in self._on_close:
            _quietly(closer)
        self.run_store.close()


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:
        log.exception("while shutting down")
