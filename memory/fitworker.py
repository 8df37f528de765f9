"""The step values' refit in a worker process, on CPU time the acting process leaves idle.

A refit (``memory/ridge.py``) runs when the values are next read after an episode was
learned, and its cost grows with the steps stored (cooking, 60 games: about 4.5 ms a fit,
4 % of a stream's wall time against an instant LLM). Between an episode's learning and the
next episode's first read the acting process has other work (the episode's end, the next
game's reset, the plan: about 20 ms in cooking), and on a machine with two or more cores
the fit can run beside it.

``FitWorker`` keeps a copy of the fit's rows in a child process (``main``: pickled messages
over its standard input and output), fed row by row as episodes are learned; ``fit`` asks
for a solve from given starting weights and returns at once, ``done`` takes the answer if
it is there and ``result`` waits for it. The child runs the same ``ridge_solve`` on the same
rows in the same order, so its weights are bit for bit those a fit in the acting process
would make. It runs under Linux's ``SCHED_IDLE`` (elsewhere at the lowest priority): at
normal priority, a solve running beside the acting process delayed that process's threads
each time one woke (the checkpoint written at an episode's end took about 2 ms longer an
episode on two cores). Requests never block the parent: what the pipe cannot take waits in
the parent until the child reads it. The child ignores Ctrl-C, exits when its input closes
(``close``, or its parent's death) and is stopped with its parent's interpreter; after a
fork the forked process leaves its parent's worker alone.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Any

import numpy as np

from memory.ridge import NO_START, Solved, Start, ridge_solve

MAX_PENDING = 64 << 20
"""Bytes of requests the child has not read yet, past which it is given up."""

RESULT_TIMEOUT_S = 60.0
"""How long ``result`` waits for a solve of a worker that has started."""


_CHILD = """
import os
try:  # first: the imports cost ~0.4 s of CPU, which must not slow the parent
    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
except (AttributeError, OSError):
    try:
        os.nice(19)
    except OSError:
        pass
from memory.fitworker import main
main()
"""


class FitWorkerError(RuntimeError):
    """The worker died or failed a solve; the caller fits in its own process instead."""


class FitWorker:
    """A child process holding a copy of the fit's rows and solving on request.

    No thread of this process waits on the child: its answers wait in the pipe (the child's
    own reader keeps taking requests meanwhile) and are read when asked for, so the acting
    process never hands the interpreter lock to a reader in the middle of its work."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        env.setdefault("OMP_NUM_THREADS", "1")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=root,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        # Requests are written without blocking: one that does not fit in the pipe waits
        # here (``_pending``) for the child to read, which on a busy machine is late.
        self._to = self._proc.stdin.fileno()
        os.set_blocking(self._to, False)
        self._pending = bytearray()
        self._from = self._proc.stdout.fileno()
        self._buffer = bytearray()
        self._lock = threading.RLock()
        self._ready = False
        self._dead: str | None = None
        self._results: dict[int, Solved | str] = {}
        self._asked = -1
        self._finalizer = weakref.finalize(self, _stop, self._proc)
        _LIVE.add(self)

    # -- acting process -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The child has started (imported what it needs) and is alive."""
        with self._lock:
            self._exchange(0.0)
            return self._ready and self._dead is None

    @property
    def alive(self) -> bool:
        with self._lock:
            return self._dead is None

    def clear(self) -> None:
        """Forget every row."""
        self._send(("clear",))

    def add(self, key: str, feats: list[np.ndarray], targets: list[np.ndarray]) -> None:
        """Rows of one record, after those already added (the fit's order), replacing any
        under the same ``key``: their features and their value for each target."""
        self._send(("add", key, feats, targets))

    def fit(self, generation: int, ridge: float, iterations: int, starts: list[Start]) -> None:
        """Ask for a solve of every target over the rows added so far, each from its start;
        ``generation`` names it for ``result``. An earlier solve not yet collected is
        dropped."""
        with self._lock:
            self._exchange(0.0)
            self._results.clear()
            self._asked = generation
            self._send(("fit", generation, ridge, iterations, starts))

    def done(self, generation: int) -> Solved | None:
        """The solve asked for as ``generation`` if it is there, else ``None`` (no wait).
        Raises ``FitWorkerError`` when the worker died or failed the solve."""
        with self._lock:
            self._exchange(0.0)
            if generation in self._results or self._dead is not None:
                return self.result(generation)
            return None

    def result(self, generation: int, timeout: float = RESULT_TIMEOUT_S) -> Solved:
        """The solve asked for as ``generation``, waiting for it. Raises ``FitWorkerError``
        when the worker died, failed the solve, or took longer than ``timeout``."""
        with self._lock:
            if generation != self._asked:
                raise FitWorkerError(f"no solve was asked for as {generation}")
            deadline = time.monotonic() + timeout
            while generation not in self._results and self._dead is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._dead = f"no answer within {timeout:.0f} s"
                    break
                self._exchange(left)
            got = self._results.get(generation)
            if isinstance(got, Solved):
                return got
            raise FitWorkerError(got or self._dead or "no answer")

    def close(self) -> None:
        """Stop the child (it exits when its input closes; killed if it does not)."""
        with self._lock:
            if self._dead is None:
                self._dead = "closed"
        self._finalizer()

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            if self._dead is not None:
                raise FitWorkerError(self._dead)
            self._pending += pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
            if len(self._pending) > MAX_PENDING:
                self._dead = "the worker does not keep up with the requests"
            self._exchange(0.0)
            if self._dead is not None:
                raise FitWorkerError(self._dead)

    def _exchange(self, wait: float) -> None:
        """Write what waits for the child while it takes it, and take in what it answered;
        up to ``wait`` seconds for an answer's first bytes."""
        deadline = time.monotonic() + wait
        while self._dead is None:
            left = max(0.0, deadline - time.monotonic())
            try:
                readable, writable, _ = select.select(
                    [self._from], [self._to] if self._pending else [], [], left
                )
                if writable:
                    with contextlib.suppress(BlockingIOError):
                        del self._pending[: os.write(self._to, self._pending[: 1 << 20])]
                chunk = os.read(self._from, 1 << 20) if readable else None
            except (OSError, ValueError) as exc:
                self._dead = f"the worker is gone: {exc}"
                return
            if chunk == b"":
                self._dead = "the worker exited"
                return
            if chunk is not None:
                self._buffer += chunk
                self._take_answers()
                deadline = 0.0  # an answer came: take what else is there, then return
            elif not writable:
                return

    def _take_answers(self) -> None:
        buf = self._buffer
        while len(buf) >= _HEADER:
            size = int.from_bytes(buf[:_HEADER], "little")
            if len(buf) < _HEADER + size:
                return
            msg = pickle.loads(buf[_HEADER : _HEADER + size])
            del buf[: _HEADER + size]
            if msg[0] == "ready":
                self._ready = True
            elif msg[0] == "fit" and msg[1] == self._asked:
                self._results[msg[1]] = Solved(msg[2], list(msg[3]))
            elif msg[0] == "error" and msg[1] == self._asked:
                self._results[msg[1]] = f"the worker failed a solve: {msg[2]}"

    def _forked_away(self) -> None:
        """In a forked child: the pipes are the parent's; never write, close or stop."""
        self._finalizer.detach()
        self._dead = "forked: the worker belongs to the parent process"
        self._lock = threading.RLock()


_HEADER = 8
"""Bytes of an answer's length, before the answer."""


def _answer(sink: IO[bytes], message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sink.write(len(data).to_bytes(_HEADER, "little") + data)
    sink.flush()


_LIVE: weakref.WeakSet[FitWorker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for worker in list(_LIVE):
        worker._forked_away()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Closing its input ends the child.
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


# -- the child ----------------------------------------------------------------------


def serve(source: IO[bytes], sink: IO[bytes]) -> None:
    """Answer messages from ``source`` until it closes. Messages are read by a thread as
    they come; a solve is skipped when another was asked for after it (episodes learned
    one after another, with no read between them, are answered once)."""
    inbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
    threading.Thread(target=_pump, args=(source, inbox), daemon=True).start()
    rows: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    # A first solve costs tens of milliseconds more than the next (scipy's first sparse
    # products, the solver's threads): paid here, before the parent is told to wait on us.
    _solve({"warm-up": ([np.arange(3)], [np.ones(1), np.ones(1)])}, 1.0, 2, [NO_START] * 2)
    _answer(sink, ("ready", os.getpid()))
    while True:
        batch = [inbox.get()]
        while not inbox.empty():
            batch.append(inbox.get())
        fits = [i for i, m in enumerate(batch) if m is not None and m[0] == "fit"]
        for i, msg in enumerate(batch):
            if msg is None:
                return
            if msg[0] == "clear":
                rows = {}
            elif msg[0] == "add":
                rows.pop(msg[1], None)
                rows[msg[1]] = (msg[2], msg[3])
            elif msg[0] == "fit" and i == fits[-1]:
                _, generation, ridge, iterations, starts = msg
                try:
                    solved = _solve(rows, ridge, iterations, starts)
                    answer: tuple[Any, ...] = ("fit", generation, solved.active, solved.weights)
                except Exception as exc:  # reported; the parent then fits in its own process
                    answer = ("error", generation, f"{type(exc).__name__}: {exc}")
                _answer(sink, answer)


def _pump(source: IO[bytes], inbox: queue.SimpleQueue[tuple[Any, ...] | None]) -> None:
    while True:
        try:
            inbox.put(pickle.load(source))
        except (EOFError, OSError, pickle.UnpicklingError, ValueError):
            inbox.put(None)
            return


def _solve(
    rows: dict[str, tuple[list[np.ndarray], list[np.ndarray]]],
    ridge: float,
    iterations: int,
    starts: list[Start],
) -> Solved:
    feats = [f for fs, _ in rows.values() for f in fs]
    targets = [
        np.concatenate([ys[t] for _, ys in rows.values()]) if rows else np.zeros(0)
        for t in range(len(starts))
    ]
    return ridge_solve(feats, targets, ridge, iterations, starts)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Answers go to a copy of standard output; anything else printing goes to stderr.
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, sink)
    # Every answer is flushed and nothing else is kept: skip the interpreter's shutdown
    # (about 60 ms with numpy, scipy and the solver's threads), which the parent waits for.
    os._exit(0)
