"""Players: what runs the episodes of one batch, learning-free (``Agent.play``).

A player gets the episodes of a batch and yields each ``PlayedEpisode`` as it ends, in any
order; the runner applies their learning afterwards, in task order. ``ThreadPlayer`` runs
them on worker threads of this process, ``RayPlayer`` (``benchmarks.harness.ray_player``)
as Ray tasks. Both play every episode against memory and tools as they are when the batch
starts, so they return the same episodes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from agent.agent import Agent
from agent.deferred import PlayedEpisode


class PlayJob(BaseModel):
    """One episode to play: what ``Agent.play`` needs, and the worker slot it plays in."""

    thread_id: str
    env: str
    seed: int
    index: int
    run_id: str
    max_steps: int | None = None
    slot: int = 0
    """Position in its batch: slot ``j`` always checkpoints into the same file, so a killed
    episode is found again by the same slot on resume."""


class Player(Protocol):
    """Plays a batch of episodes without learning; yields each as it ends."""

    def play(self, jobs: Sequence[PlayJob]) -> Iterator[PlayedEpisode]: ...

    def close(self) -> None: ...


OpenAgent = Callable[[Path], tuple[Agent, Callable[[], None]]]
"""``(checkpoint file) -> (agent, close)``: an agent on the arm's memory and tools."""


class ThreadPlayer:
    """One agent per batch slot (own LLM client, own checkpoint file), one thread each.

    The agents share the arm's memory and tools, which nobody writes while a batch plays.
    """

    def __init__(self, open_agent: OpenAgent, db_for_slot: Callable[[int], Path], n: int):
        self._open_agent = open_agent
        self._db_for_slot = db_for_slot
        self._agents: dict[int, Agent] = {}
        self._closers: list[Callable[[], None]] = []
        self._pool = ThreadPoolExecutor(max(1, n), thread_name_prefix="bench")

    def _agent(self, slot: int) -> Agent:
        # Only the driver thread opens agents, before submitting: no lock needed.
        if slot not in self._agents:
            agent, close = self._open_agent(self._db_for_slot(slot))
            self._agents[slot] = agent
            self._closers.append(close)
        return self._agents[slot]

    @staticmethod
    def _play_one(agent: Agent, job: PlayJob) -> PlayedEpisode:
        if agent.has_checkpoint(job.thread_id):  # killed half-way: finish it
            return agent.resume_play(job.thread_id)
        return agent.play(
            job.env,
            seed=job.seed,
            thread_id=job.thread_id,
            max_steps=job.max_steps,
            run_id=job.run_id,
            index=job.index,
        )

    def play(self, jobs: Sequence[PlayJob]) -> Iterator[PlayedEpisode]:
        if len({j.slot for j in jobs}) != len(jobs):
            raise ValueError("two episodes of one batch share a slot")
        futures: set[Future[PlayedEpisode]] = {
            self._pool.submit(self._play_one, self._agent(j.slot), j) for j in jobs
        }
        failed: Future[PlayedEpisode] | None = None
        try:
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for f in done:
                    if f.exception() is None:
                        yield f.result()
                    elif failed is None:
                        failed = f
            if failed is not None:
                # Raised once the others have ended: each one that finished was yielded
                # (and saved) first, so a resume does not play it again.
                failed.result()
        finally:
            # On an error (or an interrupt) let the other episodes of the batch end cleanly:
            # their checkpoints are what a resume continues from.
            for f in futures:
                f.cancel()
            wait(futures)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for close in self._closers:
            close()
