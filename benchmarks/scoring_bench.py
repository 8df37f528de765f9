"""Scoring the admissible actions of a step: what the step values cost per step, replayed.

    .venv/bin/python -m benchmarks.scoring_bench
    .venv/bin/python -m benchmarks.scoring_bench --env textworld:cooking --seeds 0-29 --rounds 5

The seeds are played once by the step-value learner alone, as ``benchmarks.values_bench``
plays them (no LLM, no graph: it explores and learns after each episode as the agent does
while learning, with the learner parameters of the settings, and offers no action that
changed nothing), and every step is recorded: the actions offered, the action taken and its
answer. The record is then replayed ``--rounds`` times with the caches of
``memory.textfeatures`` emptied before each round, timing only the scoring:
``ValueSnapshot.assess`` of the offered actions in their context (the executor's per-step
cost; the snapshot is the one the learner ended with). Printed: steps and analyses scored,
µs per analysis and per step (median over the rounds, and the fastest), and a digest of
every action's features, signature, source and value (rounded to 9 places). A change meant
to make scoring faster and nothing else must keep the digest.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console

from agent.config import load_settings
from agent.errors import EvolventError
from benchmarks.envs.base import Observation, StepResult
from benchmarks.harness.spec import parse_seeds
from benchmarks.scriptmain import run_script
from benchmarks.values_bench import play
from memory import HashingEmbedder, MemoryStore
from memory import textfeatures as tf
from memory.textfeatures import EpisodeText, analyse
from memory.values import ValueParams, ValueSnapshot


class RecordedStep(BaseModel):
    admissible: list[str]
    action: str
    answer: str
    reward: float


class RecordedEpisode(BaseModel):
    task: str
    first: str
    steps: list[RecordedStep]


class Result(BaseModel):
    env: str
    episodes: int
    steps: int
    analyses: int
    us_per_analysis: float
    """Median over the rounds."""
    us_per_analysis_best: float
    us_per_step: float
    """Median over the rounds: one ``assess`` of a step's admissible actions."""
    digest: str


class _Recorder:
    """Keeps what ``values_bench.play`` shows of each episode (``values_bench.Watcher``)."""

    def __init__(self) -> None:
        self.episodes: list[RecordedEpisode] = []

    def start(self, obs: Observation) -> None:
        self.episodes.append(RecordedEpisode(task=obs.task, first=obs.text, steps=[]))

    def step(self, offered: Sequence[str], action: str, result: StepResult) -> None:
        self.episodes[-1].steps.append(
            RecordedStep(
                admissible=list(offered), action=action, answer=result.text, reward=result.reward
            )
        )


def record(
    env_id: str,
    seeds: list[int],
    games: Path,
    max_steps: int,
    rng: random.Random,
    params: ValueParams | None = None,
) -> tuple[list[RecordedEpisode], ValueSnapshot]:
    """Play ``seeds`` with the learner, exploring and learning as ``values_bench`` (and the
    agent) does; the episodes as played (each step's offered actions) and its last
    snapshot."""
    values = MemoryStore.in_memory(HashingEmbedder(), values=params).values
    recorder = _Recorder()
    for seed in seeds:
        play(values, env_id, seed, games, max_steps, rng, watch=recorder)
    return recorder.episodes, values.snapshot()


def replay(episodes: list[RecordedEpisode], acting: ValueSnapshot) -> tuple[float, int, str]:
    """Seconds spent scoring, analyses made, and the digest of what they gave."""
    tf._known_view.cache_clear()
    spent, analyses = 0.0, 0
    digest = hashlib.sha256()
    for ep in episodes:
        ctx = EpisodeText.start(ep.task, ep.first)
        for step in ep.steps:
            started = time.perf_counter()
            seen = acting.assess(ctx, step.admissible)
            spent += time.perf_counter() - started
            analyses += len(step.admissible)
            for action, value in zip(step.admissible, seen.values, strict=True):
                view = analyse(ctx, action)  # remembered: the view assess made
                digest.update(
                    repr((view.features, view.signature, view.source, round(value, 9))).encode()
                )
            ctx.observe(step.action, step.answer, step.reward)
    return spent, analyses, digest.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.scoring_bench",
        description=(__doc__ or "").split("\n\n")[0],
    )
    ap.add_argument("--env", default="textworld:cooking")
    ap.add_argument("--seeds", default="0-29", help="games played and replayed (default 0-29)")
    ap.add_argument("--max-steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5, help="replays timed (default 5)")
    ap.add_argument("--seed", type=int, default=0, help="the learner's exploration seed")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a line")
    args = ap.parse_args(argv)
    return run_script(lambda err: _run(args, err))


def _run(args: argparse.Namespace, err: Console) -> int:
    seeds = parse_seeds(args.seeds)
    if args.max_steps < 1 or args.rounds < 1:
        raise EvolventError("--max-steps and --rounds must be >= 1")
    settings = load_settings(None)
    with err.status(f"playing {len(seeds)} games of {args.env}"):
        episodes, acting = record(
            args.env,
            seeds,
            settings.games_path,
            args.max_steps,
            random.Random(args.seed),
            settings.memory.values,
        )
    times: list[float] = []
    digests: set[str] = set()
    analyses = 0
    with err.status(f"replaying {args.rounds} times"):
        for _ in range(args.rounds):
            spent, analyses, digest = replay(episodes, acting)
            times.append(spent)
            digests.add(digest)
    if len(digests) != 1:
        raise EvolventError(f"replays disagree: {sorted(digests)}")  # scoring must not drift
    steps = sum(len(ep.steps) for ep in episodes)
    res = Result(
        env=args.env,
        episodes=len(episodes),
        steps=steps,
        analyses=analyses,
        us_per_analysis=round(1e6 * statistics.median(times) / max(analyses, 1), 2),
        us_per_analysis_best=round(1e6 * min(times) / max(analyses, 1), 2),
        us_per_step=round(1e6 * statistics.median(times) / max(steps, 1), 1),
        digest=digests.pop(),
    )
    if args.json:
        print(res.model_dump_json())
    else:
        print(
            f"{res.env}: {res.episodes} episodes, {res.steps} steps, {res.analyses} analyses; "
            f"{res.us_per_analysis} µs an analysis (best {res.us_per_analysis_best}), "
            f"{res.us_per_step} µs a step; digest {res.digest}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
