"""The step values' fit in a worker process: the same weights, and no process left behind."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from word_env import WordEnv

from agent import Agent
from agent.config import load_settings
from agent.llm.scripted import ScriptedLLM
from memory import HashingEmbedder, InProcessBackend, MemoryStore
from memory import values as values_module
from memory.fitworker import FitWorker, FitWorkerError
from memory.records import Provenance
from memory.ridge import NO_START, Solved, ridge_solve
from memory.values import ValueFunction, ValueStep

pytestmark = pytest.mark.skipif(
    values_module._cores() < 2, reason="the fit worker is used only with two or more cores"
)


def _rows(rng: np.random.Generator, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    feats = [np.sort(rng.choice(400, size=12, replace=False)).astype(np.int64) for _ in range(n)]
    return feats, [rng.normal(size=n), rng.normal(size=n)]


def _wait_ready(worker: FitWorker) -> None:
    deadline = time.monotonic() + 60
    while not worker.ready:
        assert worker.alive, "the worker died while starting"
        assert time.monotonic() < deadline, "the worker did not start within 60 s"
        time.sleep(0.02)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # a zombie has exited
        return f.read().split()[2] == "Z"


def test_the_worker_solves_bit_for_bit_as_this_process_and_answers_the_last_request() -> None:
    rng = np.random.default_rng(3)
    worker = FitWorker()
    try:
        _wait_ready(worker)
        feats_a, ys_a = _rows(rng, 30)
        feats_b, ys_b = _rows(rng, 20)
        start = ridge_solve(feats_a, ys_a, 1.0, 5, [NO_START] * 2)
        starts = list(zip([start.active] * 2, start.weights, strict=True))
        worker.add("a", feats_a, ys_a)
        worker.fit(1, 1.0, 40, starts)
        worker.add("b", feats_b, ys_b)
        worker.fit(2, 1.0, 40, starts)  # supersedes the first request
        got = worker.result(2)
        want = ridge_solve(
            feats_a + feats_b,
            [np.concatenate([a, b]) for a, b in zip(ys_a, ys_b, strict=True)],
            1.0,
            40,
            starts,
        )
        assert np.array_equal(got.active, want.active)
        assert all(np.array_equal(g, w) for g, w in zip(got.weights, want.weights, strict=True))
        with pytest.raises(FitWorkerError):
            worker.result(1, timeout=0.5)  # dropped: only the last request is answered
        # "add" under a key already held replaces its rows; "clear" forgets them all.
        worker.add("a", feats_b, ys_b)
        worker.fit(3, 1.0, 40, [starts[0]])
        again = ridge_solve(
            feats_b + feats_b, [np.concatenate([ys_b[0]] * 2)], 1.0, 40, [starts[0]]
        )
        assert np.array_equal(worker.result(3).weights[0], again.weights[0])
        worker.clear()
        worker.fit(4, 1.0, 40, [starts[0]])
        assert worker.result(4).active.size == 0
        pid = worker._proc.pid
    finally:
        worker.close()
    deadline = time.monotonic() + 10
    while not _gone(pid):
        assert time.monotonic() < deadline, "the worker outlived close()"
        time.sleep(0.02)
    assert not worker.alive
    with pytest.raises(FitWorkerError):
        worker.fit(5, 1.0, 40, [])


def _learn(values: ValueFunction, episode: int, rng: np.random.Generator) -> None:
    steps = [
        ValueStep(
            state=f"s{episode}",
            action=f"act {i}",
            reward=float(rng.integers(0, 2)),
            features=sorted({int(f) for f in rng.choice(3000, size=15, replace=False)}),
            signature=f"sig{i % 3}",
        )
        for i in range(12)
    ]
    values.learn(steps, bool(episode % 3 == 0), False, Provenance(episode_id=f"e{episode}"))


def _worker_done(values: ValueFunction) -> None:
    """Wait until the worker has answered the solve asked after the last learning."""
    worker = values._worker
    assert worker is not None
    _wait_ready(worker)
    deadline = time.monotonic() + 60
    while worker.done(values._generation) is None:
        assert time.monotonic() < deadline, "no answer within 60 s"
        time.sleep(0.005)


def _pair(monkeypatch: pytest.MonkeyPatch) -> tuple[MemoryStore, MemoryStore]:
    monkeypatch.setattr(values_module, "FIT_PROCESS_AFTER_S", 0.0)
    emb = HashingEmbedder()
    here = MemoryStore(InProcessBackend(emb.dim), emb)
    there = MemoryStore(InProcessBackend(emb.dim), emb, fit_process=True)
    return here, there


def test_values_fitted_in_the_worker_equal_those_fitted_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    here, there = _pair(monkeypatch)
    solves: list[int] = []
    real = ridge_solve

    def counted(*args: object, **kw: object) -> Solved:
        solves.append(1)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(values_module, "ridge_solve", counted)
    rng_here, rng_there = np.random.default_rng(11), np.random.default_rng(11)
    try:
        for episode in range(8):
            for _ in range(2 if episode == 5 else 1):  # episode 5: two learned, no read between
                _learn(here.values, episode, rng_here)
                _learn(there.values, episode, rng_there)
            if episode >= 1:
                assert there.values._worker is not None  # started at the second learning
            waited = episode >= 2 and episode % 2 == 0  # else the read may find it running
            if waited:
                _worker_done(there.values)
            before = len(solves)
            a, b = here.values.snapshot(), there.values.snapshot()
            if waited:
                assert len(solves) == before + 1  # only ``here`` solved in this process
            assert np.array_equal(a.weights, b.weights)
            assert a.support == b.support
    finally:
        here.close()
        there.close()
    assert there.values._worker is None


def test_a_dead_worker_is_replaced_by_fits_here(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    here, there = _pair(monkeypatch)
    rng_here, rng_there = np.random.default_rng(5), np.random.default_rng(5)
    try:
        for episode in range(3):
            _learn(here.values, episode, rng_here)
            _learn(there.values, episode, rng_there)
            here.values.snapshot(), there.values.snapshot()
        worker = there.values._worker
        assert worker is not None
        _worker_done(there.values)
        os.kill(worker._proc.pid, signal.SIGKILL)
        worker._proc.wait()
        _learn(here.values, 3, rng_here)
        with caplog.at_level(logging.WARNING, logger="memory.values"):
            _learn(there.values, 3, rng_there)
            got = there.values.snapshot()
        assert np.array_equal(here.values.snapshot().weights, got.weights)
        assert there.values._worker is None
        assert "fit worker stopped" in caplog.text
    finally:
        here.close()
        there.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_leaves_its_parents_worker_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    here, there = _pair(monkeypatch)
    rng = np.random.default_rng(2)
    try:
        for episode in range(3):
            _learn(there.values, episode, rng)
            there.values.snapshot()
        worker = there.values._worker
        assert worker is not None
        _wait_ready(worker)
        pid = os.fork()
        if pid == 0:  # the child fits in its own process, then exits as if normally
            try:
                _learn(there.values, 9, np.random.default_rng(9))
                there.values.snapshot()
                there.close()
                os._exit(0)
            except BaseException:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert worker.alive and not _gone(worker._proc.pid)
        _learn(there.values, 3, rng)
        there.values.snapshot()
        assert there.values._worker is worker  # still answering
    finally:
        here.close()
        there.close()


def test_the_worker_runs_on_idle_cpu_time_and_never_blocks_its_parent() -> None:
    """A child that does not read (stopped here; on a busy machine, starved of CPU) costs
    the parent no wait: requests queue in the parent and reach the child when it runs."""
    rng = np.random.default_rng(8)
    worker = FitWorker()
    try:
        _wait_ready(worker)
        pid = worker._proc.pid
        if hasattr(os, "SCHED_IDLE"):
            assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        os.kill(pid, signal.SIGSTOP)
        sent: list[np.ndarray] = []
        targets: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])

        def ask() -> None:
            for i in range(60):  # about 400 KB, several times what the pipe holds
                feats, ys = _rows(rng, 40)
                worker.add(f"r{i}", feats, ys)
                sent.extend(feats)
                targets[0].append(ys[0])
                targets[1].append(ys[1])
            worker.fit(1, 1.0, 30, [NO_START, NO_START])

        asking = threading.Thread(target=ask, daemon=True)
        try:
            asking.start()
            asking.join(10.0)
            assert not asking.is_alive(), "writing to a child that does not read blocked"
            assert len(worker._pending) > 0 and worker.done(1) is None
        finally:
            os.kill(pid, signal.SIGCONT)
            asking.join(10.0)
        got = worker.result(1)
        want = ridge_solve(sent, [np.concatenate(y) for y in targets], 1.0, 30, [NO_START] * 2)
        assert all(np.array_equal(g, w) for g, w in zip(got.weights, want.weights, strict=True))
    finally:
        worker.close()


def test_an_agent_learning_with_the_worker_makes_the_same_choices(
    evolvent_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the same episodes, learned and acted on with fits here or in the worker
    (waited for before each episode, so that it is used), give the same moves."""
    monkeypatch.setattr(values_module, "FIT_PROCESS_AFTER_S", 0.0)
    llm = ScriptedLLM(responder=lambda k, p, o: "wait" if k == "choose" else "ok")
    emb = HashingEmbedder()
    played: dict[bool, list[list[str | None]]] = {}
    weights: dict[bool, np.ndarray] = {}
    used = 0
    for in_worker in (False, True):
        # Exploration is seeded by the episode's thread id: the same ids in both homes.
        home = evolvent_home / ("worker" if in_worker else "here")
        settings = load_settings(None, home=str(home), **{"memory.action_policy": "follow"})
        store = MemoryStore(InProcessBackend(emb.dim), emb, fit_process=in_worker)
        with Agent(settings, llm=llm, memory=store, embedder=emb) as agent:
            runs = []
            for seed in range(10):
                if in_worker and store.values._worker is not None:
                    _worker_done(store.values)
                    used += 1
                result = agent.run(WordEnv(seed), max_steps=6, thread_id=f"ep{seed}")
                runs.append([st.action for st in result.trajectory])
            played[in_worker] = runs
        if in_worker:
            _worker_done(store.values)
        weights[in_worker] = store.values.snapshot().weights
        store.close()
        assert store.values._worker is None
    assert used >= 5
    assert played[True] == played[False]
    assert np.array_equal(weights[True], weights[False])
