"""The step values' refit in a worker process, while the acting process goes on.

A refit (``memory/ridge.py``) runs when the values are next read after an episode was
learned, and its cost grows with the steps stored (cooking, 60 games: about 4.5 ms a fit,
4 % of a stream's wall time against an instant LLM). Between an episode's learning and the
next episode's first read the acting process has other work (the episode's end, the next
game's reset, the plan), and on a machine with two or more cores the fit can run beside it.

``FitWorker`` keeps a copy of the fit's rows in a child process (``main`` here: pickled
messages over its standard input and output), fed row by row as
episodes are learned; ``fit`` asks for a solve from given starting weights and returns at
once, ``result`` waits for it. The worker runs the same ``ridge_solve`` on the same rows in
the same order, so its weights are bit for bit those a fit in the acting process would make.
The child ignores Ctrl-C, exits when its input closes (``close``, or its parent's death) and
is stopped with its parent's interpreter; after a fork the child process leaves its parent's
worker alone.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import weakref
from pathlib import Path
from typing import IO, Any

import numpy as np

from memory.ridge import Solved, expand, ridge_solve

log = logging.getLogger(__name__)

Start = tuple[np.ndarray, np.ndarray]
"""Starting weights in the compact form of ``Solved``: features and their weights."""

READY_TIMEOUT_S = 60.0
"""How long ``result`` waits for a solve of a worker that has started."""


class FitWorkerError(RuntimeError):
    """The worker died or failed a solve; the caller fits in its own process instead."""


class FitWorker:
    """A child process holding a copy of the fit's rows and solving on request."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        env.setdefault("OMP_NUM_THREADS", "1")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from memory.fitworker import main; main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=root,
        )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._to: IO[bytes] = self._proc.stdin
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ready = False
        self._dead: str | None = None
        self._results: dict[int, Solved | str] = {}
        self._asked = -1
        self._reader = threading.Thread(
            target=self._read, args=(self._proc.stdout,), name="evolvent-fit-reader", daemon=True
        )
        self._reader.start()
        self._finalizer = weakref.finalize(self, _stop, self._proc)
        _LIVE.add(self)

    # -- acting process -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The child has started (imported what it needs) and is alive."""
        with self._lock:
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
            self._results.clear()
            self._asked = generation
        self._send(("fit", generation, ridge, iterations, starts))

    def asked(self) -> int:
        """The generation of the last solve asked for (-1: none)."""
        with self._lock:
            return self._asked

    def result(self, generation: int, timeout: float = READY_TIMEOUT_S) -> Solved:
        """The solve asked for as ``generation``, waiting for it. Raises ``FitWorkerError``
        when the worker died, failed the solve, or took longer than ``timeout``."""
        with self._lock:
            if generation != self._asked:
                raise FitWorkerError(f"no solve was asked for as {generation}")
            if not self._changed.wait_for(
                lambda: generation in self._results or self._dead is not None, timeout
            ):
                self._dead = f"no answer within {timeout:.0f} s"
            got = self._results.pop(generation, None)
            if isinstance(got, Solved):
                return got
            raise FitWorkerError(got or self._dead or "no answer")

    def close(self) -> None:
        """Stop the child (it exits when its input closes; killed if it does not)."""
        with self._lock:
            if self._dead is None:
                self._dead = "closed"
            self._changed.notify_all()
        self._finalizer()

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._dead is not None:
            raise FitWorkerError(self._dead)
        try:
            pickle.dump(message, self._to, protocol=pickle.HIGHEST_PROTOCOL)
            self._to.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            self._died(f"cannot write to the worker: {exc}")
            raise FitWorkerError(self._dead or "dead") from exc

    def _read(self, stream: IO[bytes]) -> None:
        """Collect the child's answers (a thread: an answer never waits in a full pipe)."""
        while True:
            try:
                msg = pickle.load(stream)
            except (EOFError, OSError, pickle.UnpicklingError, ValueError):
                self._died("the worker exited")
                stream.close()
                return
            with self._lock:
                if msg[0] == "ready":
                    self._ready = True
                elif msg[0] == "fit" and msg[1] == self._asked:
                    self._results[msg[1]] = Solved(msg[2], list(msg[3]))
                elif msg[0] == "error" and msg[1] == self._asked:
                    self._results[msg[1]] = f"the worker failed a solve: {msg[2]}"
                self._changed.notify_all()

    def _died(self, why: str) -> None:
        with self._lock:
            if self._dead is None:
                self._dead = why
            self._changed.notify_all()

    def _forked_away(self) -> None:
        """In a forked child: the pipes are the parent's; never write, close or stop."""
        self._finalizer.detach()
        self._dead = "forked: the worker belongs to the parent process"
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)


_LIVE: weakref.WeakSet[FitWorker] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for worker in list(_LIVE):
        worker._forked_away()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    # Closing its input ends the child; its output is closed by the reader at the EOF
    # that follows (closing it here could wait on the reader's lock).
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


# -- the child ----------------------------------------------------------------------


def serve(source: IO[bytes], sink: IO[bytes]) -> None:
    """Answer messages from ``source`` until it closes. Messages are read by a thread as
    they come; a solve is skipped when another was asked for after it (episodes learned
    one after another, with no read between them, are answered once)."""
    inbox: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
    threading.Thread(target=_pump, args=(source, inbox), daemon=True).start()
    rows: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    pickle.dump(("ready", os.getpid()), sink)
    sink.flush()
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
                pickle.dump(answer, sink, protocol=pickle.HIGHEST_PROTOCOL)
                sink.flush()


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
    full = [expand(active, w) for active, w in starts]
    return ridge_solve(feats, targets, ridge, iterations, full, parallel=False)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Answers go to a copy of standard output; anything else printing goes to stderr.
    sink = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, sink)


if __name__ == "__main__":
    main()
