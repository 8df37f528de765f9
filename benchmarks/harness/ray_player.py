"""The Ray executor: every episode of a batch is a Ray task; the driver learns from them.

A task gets plain data (``RemoteEpisode``, JSON): the arm's settings — memory at a Chroma
server (``memory.url``), the LLM at an endpoint (``llm.base_url``) — a snapshot of the arm's
tools, and the episode. It builds its own ``Agent`` (memory read-only, tools in process,
checkpoints in a temporary file), plays the episode with ``Agent.play`` and returns the
``PlayedEpisode``. Tools and memory only change between batches, on the driver, so every
task of a batch sees the state the batch started from, wherever it runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agent.config import Settings
from agent.deferred import PlayedEpisode
from agent.errors import ConfigError, EvolventError
from benchmarks.harness.players import PlayJob
from memory.embeddings import Embedder, HashingEmbedder, default_embedder
from toolsmith.models import Tool
from toolsmith.synthesizer import Toolsmith, ToolsmithConfig

LOCAL_CPUS = 2
"""CPUs of a local Ray instance (one episode per CPU at a time)."""


class RemoteEpisode(BaseModel):
    """Everything a Ray worker needs to play one episode, as plain data."""

    settings: dict[str, Any]
    """The phase's ``Settings`` (JSON); ``memory.url`` and ``llm.base_url`` are set."""
    job: PlayJob
    tools: list[Tool]
    """The arm's tools when the batch started, in registry order."""
    toolsmith: ToolsmithConfig
    embedder: str
    """Name of the arm's embedder (``Embedder.name``): the worker loads the same one."""


def embedder_named(name: str) -> Embedder:
    """The embedder whose ``name`` is ``name``: ``hashing-DIM`` or the default model."""
    if name.startswith("hashing-") and name.removeprefix("hashing-").isdigit():
        return HashingEmbedder(int(name.removeprefix("hashing-")))
    emb = default_embedder()
    if emb.name != name:
        raise ConfigError(f"unknown embedder {name!r} (this worker has {emb.name})")
    return emb


def play_task(task: RemoteEpisode) -> PlayedEpisode:
    """Build an agent from ``task`` and play its episode learning-free."""
    from agent.agent import Agent
    from agent.llm.factory import make_client
    from agent.stores import open_memory
    from toolsmith.registry import InProcessToolRegistry

    settings = Settings.model_validate(task.settings)
    mcfg = settings.memory
    if not mcfg.url or not settings.llm.base_url:
        raise ConfigError("a Ray episode needs memory.url and llm.base_url")
    emb = embedder_named(task.embedder)
    registry = InProcessToolRegistry(emb, mcfg.namespace)
    for tool in task.tools:
        registry.put(tool)
    toolsmith = Toolsmith(registry, task.toolsmith)
    store = open_memory(settings, emb, read_only=True)
    try:
        with tempfile.TemporaryDirectory(prefix="evolvent-ray-") as tmp:
            settings.checkpoint_db = Path(tmp) / "episode.sqlite"
            llm = make_client(settings.llm)[0]
            try:
                with Agent(
                    settings, llm=llm, memory=store, toolsmith=toolsmith, embedder=emb
                ) as agent:
                    job = task.job
                    return agent.play(
                        job.env,
                        seed=job.seed,
                        thread_id=job.thread_id,
                        max_steps=job.max_steps,
                        run_id=job.run_id,
                        index=job.index,
                    )
            finally:
                llm.close()
    finally:
        store.close()


def play_remote(payload: str) -> str:
    """The Ray task: ``RemoteEpisode`` JSON in, ``PlayedEpisode`` JSON out."""
    return play_task(RemoteEpisode.model_validate_json(payload)).model_dump_json()


_remote: Any = None


def _remote_fn() -> Any:
    global _remote
    if _remote is None:
        import ray

        _remote = ray.remote(num_cpus=1, max_retries=0)(play_remote)
    return _remote


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'ray[default]==2.60.0' (extra `envs`)"
        ) from None
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Join the Ray cluster at ``address``, or start a local instance (2 CPUs, no
    dashboard, logs in a temporary directory); shut down on exit."""
    ray = _import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory(prefix="ray-") as tmp:
        try:
            if address:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            else:
                ray.init(
                    num_cpus=min(LOCAL_CPUS, os.cpu_count() or 1),
                    include_dashboard=False,
                    _temp_dir=tmp,
                    object_store_memory=128 * 1024 * 1024,
                    log_to_driver=False,
                    configure_logging=False,
                )
        except (ConnectionError, RuntimeError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            where = address or "a local instance"
            raise EvolventError(f"cannot start Ray ({where}): {first}") from None
        try:
            yield
        finally:
            ray.shutdown()


class RayPlayer:
    """Plays each episode of a batch as a Ray task (inside ``ray_session``)."""

    def __init__(self, settings: Settings, toolsmith: Toolsmith, embedder: str) -> None:
        if not settings.memory.url or not settings.llm.base_url:
            raise ConfigError("the Ray executor needs memory.url and llm.base_url")
        self._settings = settings.model_dump(mode="json")
        self._toolsmith = toolsmith
        self._embedder = embedder

    def play(self, jobs: Sequence[PlayJob]) -> Iterator[PlayedEpisode]:
        ray = _import_ray()
        tools = self._toolsmith.registry.list_tools()
        refs: dict[Any, PlayJob] = {}
        for job in jobs:
            task = RemoteEpisode(
                settings=self._settings,
                job=job,
                tools=tools,
                toolsmith=self._toolsmith.config,
                embedder=self._embedder,
            )
            refs[_remote_fn().remote(task.model_dump_json())] = job
        waiting = list(refs)
        try:
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                for ref in done:
                    yield PlayedEpisode.model_validate_json(self._get(ray, ref, refs[ref]))
        finally:
            for ref in waiting:
                ray.cancel(ref, force=True)

    @staticmethod
    def _get(ray: Any, ref: Any, job: PlayJob) -> str:
        from ray.exceptions import RayTaskError

        try:
            return str(ray.get(ref))
        except RayTaskError as e:
            cause = getattr(e, "cause", None) or e
            what = "" if isinstance(cause, EvolventError) else f"{type(cause).__name__}: "
            detail = (str(cause).strip().splitlines() or [""])[-1]
            raise EvolventError(
                f"episode {job.thread_id} failed in its Ray task: {what}{detail}"
            ) from None

    def close(self) -> None:
        """Nothing to release: the Ray session belongs to the run."""
