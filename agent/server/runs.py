"""The run manager: runs execute in a pool of worker threads inside the server process.

A run's row (``RunStore``) is the source of truth for its status; its steps are recorded as
events while it plays, so event streams can be replayed. Cancelling is cooperative: the
step callback sees the flag after a completed (checkpointed) step and stops the episode
there. A server that stops gracefully marks its runs ``interrupted`` the same way; one that
dies is found out at the next startup (``recover``). ``resume`` continues an interrupted run
from its last LangGraph checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agent.agent import Agent
from agent.episode_lines import counted
from agent.errors import EvolventError
from agent.result import StepView
from agent.server.deps import ServerDeps
from agent.server.metrics import Metrics
from agent.server.models import EpisodeSummary, RunCreate, RunView
from agent.server.store import RunRow, new_run_id
from agent.tasks import TEXT_ENV_ID

log = logging.getLogger(__name__)


class RunError(Exception):
    """A request the run manager refuses; ``status_code`` is the HTTP answer."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RunNotFound(RunError):
    status_code = 404


class RunConflict(RunError):
    status_code = 409


class RunInvalid(RunError):
    status_code = 422


class AtCapacity(RunError):
    status_code = 429


class ShuttingDown(RunError):
    status_code = 503


class _Cancelled(Exception):
    """Raised from the step callback to stop a cancelled run after its current step."""


class _Stopping(Exception):
    """Raised from the step callback when the server shuts down."""


@dataclass
class _Active:
    namespace: str
    resume: bool
    cancel: threading.Event = field(default_factory=threading.Event)
    started: bool = False


class Notifier:
    """Wakes the event streams (asyncio, any loop) of a run when a worker thread wrote to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def notify(self, run_id: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(run_id, ()))
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed, its stream gone
                loop.call_soon_threadsafe(event.set)

    @contextmanager
    def listen(self, run_id: str) -> Iterator[asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(run_id, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(run_id)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._waiters[run_id]


def run_view(row: RunRow) -> RunView:
    return RunView(
        id=row.id,
        status=row.status,  # type: ignore[arg-type]
        env=row.env,
        task=row.task,
        seed=row.seed,
        max_steps=row.max_steps,
        token_budget=row.token_budget,
        created_at=row.created,
        started_at=row.started,
        finished_at=row.finished,
        events=row.events,
        cancel_requested=row.cancel_requested,
        error=row.error,
        result=EpisodeSummary.model_validate(row.result) if row.result else None,
    )


class RunManager:
    def __init__(self, deps: ServerDeps, metrics: Metrics) -> None:
        self.deps = deps
        self.store = deps.run_store
        self.metrics = metrics
        self.notifier = Notifier()
        cfg = deps.config
        self.capacity = cfg.max_concurrent_runs + cfg.max_queued_runs
        self._pool = ThreadPoolExecutor(cfg.max_concurrent_runs, thread_name_prefix="evolvent-run")
        self._lock = threading.Lock()
        self._active: dict[str, _Active] = {}
        self._closing = False

    def recover(self) -> int:
        """At startup: runs left queued or running by a dead process become interrupted."""
        n = self.store.mark_interrupted()
        if n:
            log.warning("%d run(s) were interrupted by the last shutdown; resume them", n)
        return n

    # -- requests ---------------------------------------------------------------------

    def create(self, namespace: str, req: RunCreate) -> RunRow:
        limits = self.deps.settings.limits
        max_steps = req.max_steps or limits.max_steps
        if max_steps > self.deps.config.max_steps_limit:
            raise RunInvalid(
                f"max_steps {max_steps} is over this server's limit of "
                f"{self.deps.config.max_steps_limit}"
            )
        row = RunRow(
            id=new_run_id(),
            namespace=namespace,
            status="queued",
            env=req.env or TEXT_ENV_ID,
            task=req.task,
            seed=req.seed,
            max_steps=max_steps,
            token_budget=req.token_budget or limits.token_budget,
            created=time.time(),
        )
        with self._lock:
            self._check_room()
            self.store.insert(row)
            self._active[row.id] = _Active(namespace, resume=False)
            self._gauges()
        what = "a text task" if row.env == TEXT_ENV_ID else f"{row.env} seed {row.seed}"
        log.info(  # before a worker can say that it started
            "run %s queued (namespace %s): %s, at most %d steps", row.id, namespace, what, max_steps
        )
        self._pool.submit(self._execute, row.id)
        return row

    def get(self, namespace: str, run_id: str) -> RunRow:
        row = self.store.get(run_id, namespace)
        if row is None:
            raise RunNotFound(f"no run {run_id!r}")
        return row

    def resume(self, namespace: str, run_id: str) -> RunRow:
        with self._lock:
            row = self.get(namespace, run_id)
            if row.status != "interrupted" or run_id in self._active:
                raise RunConflict(
                    f"run {run_id} is {row.status}; only interrupted runs can be resumed"
                )
            self._check_room()
            self.store.update(run_id, status="queued", finished=None, cancel_requested=False)
            self._active[run_id] = _Active(namespace, resume=True)
            self._gauges()
        log.info("run %s queued to resume (namespace %s)", run_id, namespace)
        self._pool.submit(self._execute, run_id)
        return self.get(namespace, run_id)

    def cancel(self, namespace: str, run_id: str) -> RunRow:
        """Queued and interrupted runs stop at once; a running one after its current step."""
        with self._lock:
            row = self.get(namespace, run_id)
            act = self._active.get(run_id)
            told = "cancelled before it started"
            if act is not None:
                act.cancel.set()
                if act.started:
                    self.store.update(run_id, cancel_requested=True)
                    told = "to be cancelled after its current step"
                else:
                    self._finish_unstarted(run_id, "cancelled")
                    del self._active[run_id]  # its worker finds nothing to do
                    self._gauges()
            elif row.status == "interrupted":
                self._finish_unstarted(run_id, "cancelled")
                told = "cancelled after its interruption"
            else:
                raise RunConflict(f"run {run_id} is already {row.status}")
        log.info("run %s %s (namespace %s)", run_id, told, namespace)
        self.notifier.notify(run_id)
        return self.get(namespace, run_id)

    @property
    def closed(self) -> bool:
        return self._closing

    def active_count(self) -> int:
        with self._lock:
            return len(self._active)

    def shutdown(self) -> None:
        """Stop taking runs; running ones stop after their current step, as interrupted."""
        with self._lock:
            self._closing = True
            for run_id, act in self._active.items():
                if not act.started:
                    self.store.update(run_id, status="interrupted")
                    log.info("run %s interrupted before it started (shutting down)", run_id)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- workers ----------------------------------------------------------------------

    def _check_room(self) -> None:
        if self._closing:
            raise ShuttingDown("the server is shutting down")
        if len(self._active) >= self.capacity:
            raise AtCapacity(
                f"{len(self._active)} runs are running or queued, the limit is "
                f"{self.capacity}; retry when one has finished"
            )

    def _finish_unstarted(self, run_id: str, status: str) -> None:
        self.store.update(run_id, status=status, finished=time.time())
        self.metrics.runs_finished.labels(status).inc()

    def _gauges(self) -> None:
        running = sum(1 for a in self._active.values() if a.started)
        self.metrics.runs_running.set(running)
        self.metrics.runs_queued.set(len(self._active) - running)

    def _execute(self, run_id: str) -> None:
        with self._lock:
            act = self._active.get(run_id)
            if act is None:
                return
            if act.cancel.is_set() or self._closing:
                # cancel() or shutdown() has already recorded how it ended.
                del self._active[run_id]
                self._gauges()
                return
            act.started = True
            self._gauges()
        t0 = time.perf_counter()
        self.store.update(run_id, status="running", started=time.time())
        self.metrics.runs_started.labels("resume" if act.resume else "new").inc()
        self.notifier.notify(run_id)
        log.info("run %s started%s", run_id, " (resumed)" if act.resume else "")
        status, fields = "failed", {"error": "the run stopped unexpectedly"}
        try:
            status, fields = self._play(run_id, act)
        finally:
            self.store.update(run_id, status=status, finished=time.time(), **fields)
            log.info(
                "run %s %s after %.1f s%s", run_id, status, time.perf_counter() - t0, _how(fields)
            )
            with self._lock:
                self._active.pop(run_id, None)
                self._gauges()
            self.metrics.runs_finished.labels(status).inc()
            self.metrics.run_duration.labels(status).observe(time.perf_counter() - t0)
            self.notifier.notify(run_id)

    def _play(self, run_id: str, act: _Active) -> tuple[str, dict[str, Any]]:
        row = self.store.get(run_id)
        assert row is not None
        seq = 0

        def on_step(step: StepView) -> None:
            nonlocal seq
            self.store.put_event(run_id, seq, step.model_dump_json())
            seq += 1
            self.notifier.notify(run_id)
            if act.cancel.is_set():
                raise _Cancelled()
            if self._closing:
                raise _Stopping()

        try:
            agent = self.deps.agent(row.namespace)
            if act.resume and agent.has_checkpoint(run_id):
                seq = _checkpointed_steps(agent, run_id)
                result = agent.resume(run_id, on_step=on_step)
            else:
                target = row.task if row.env == TEXT_ENV_ID and row.task else row.env
                result = agent.run(
                    target,
                    seed=row.seed,
                    thread_id=run_id,
                    max_steps=row.max_steps,
                    token_budget=row.token_budget,
                    on_step=on_step,
                    run_id=run_id,
                )
        except _Cancelled:
            return "cancelled", {}
        except _Stopping:
            return "interrupted", {}
        except EvolventError as e:
            return "failed", {"error": str(e)}
        except Exception as e:
            log.exception("run %s failed", run_id)
            return "failed", {"error": f"{type(e).__name__}: {e}"}
        self.store.replace_events(run_id, [s.model_dump_json() for s in result.trajectory])
        return "succeeded", {"result": result.summary(), "error": None}


def _how(fields: dict[str, Any]) -> str:
    """How a run ended, for the server's log: the episode's outcome or the error."""
    result = fields.get("result")
    if result is not None:
        mark = "won" if result["success"] else "not won"
        score = f"{result['score']:g}/{result['max_score']:g}"
        return f": {mark}, score {score} in {counted(result['steps'], 'step')}"
    error = fields.get("error")
    return f": {' '.join(str(error).split())}" if error else ""  # one line, as each log entry


def _checkpointed_steps(agent: Agent, thread_id: str) -> int:
    """Steps in the thread's last checkpoint: where a resumed run's events continue."""
    values = agent.graph.get_state({"configurable": {"thread_id": thread_id}}).values
    return len(values.get("steps", []))
