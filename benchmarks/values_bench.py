"""The step-value learner alone: how far self-play gets, and how much it varies by run.

    .venv/bin/python -m benchmarks.values_bench --env textworld:cooking --runs 1-6
    .venv/bin/python -m benchmarks.values_bench --env textworld:treasure_hunter \\
        --train-seeds 0-19 --test-seeds 1000-1009 --runs 1-3

No LLM and no agent graph: the value function of ``memory.values`` (the agent's
``memory.step_values``) plays every action. The first training episode picks admissible
actions at random (nothing is learned yet); after that it explores as the agent does while
learning (``ValueSnapshot.explore_choice``), and learns from each episode as it ends. The
held-out seeds are then played greedily (the top proposal), learning frozen. As in the agent
(``agent.skip_no_ops``), actions that changed nothing where the episode stands are not
offered (``agent.noops``; ``--keep-no-ops`` offers them). Runs differ
only in the random seed of exploration, so their spread is the learner's own variance —
what one ``evolvent bench`` run samples from. Each run starts from an empty in-memory store.

The learner's parameters are the agent's: ``memory.values`` of the settings (``--config
FILE``, or environment variables such as ``EVOLVENT_MEMORY__VALUES__GAMMA=0.95``); the table's
title names those that differ from the defaults.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.config import load_settings
from agent.errors import EvolventError
from agent.noops import Move, no_op_actions
from agent.stepmemory import STATE_TEXT_CHARS
from benchmarks.envs.base import Observation, StepResult
from benchmarks.envs.registry import make_env
from benchmarks.harness.spec import parse_seeds
from benchmarks.scriptmain import run_script
from memory import HashingEmbedder, MemoryStore
from memory.records import Provenance
from memory.textfeatures import EpisodeText, analyse
from memory.values import ValueFunction, ValueStep, enablers, newly_admissible


class Episode(BaseModel):
    seed: int
    won: bool
    score: float
    """Normalized score."""
    steps: int


class Run(BaseModel):
    run: int
    train: list[Episode]
    held_out: list[Episode]

    def train_per_10(self) -> list[float]:
        tr = [e.score for e in self.train]
        return [statistics.mean(tr[i : i + 10]) for i in range(0, len(tr), 10)]


class Watcher(Protocol):
    """Shown what ``play`` does (``benchmarks.scoring_bench`` records episodes with it)."""

    def start(self, obs: Observation) -> None:
        """The episode's first observation."""

    def step(self, offered: Sequence[str], action: str, result: StepResult) -> None:
        """A step: the actions offered, the one taken, and what the environment answered."""


def play(
    values: ValueFunction,
    env_id: str,
    seed: int,
    games: Path,
    max_steps: int,
    rng: random.Random | None,
    script: Sequence[str] | None = None,
    skip_no_ops: bool = True,
    watch: Watcher | None = None,
) -> Episode:
    """One episode; ``rng`` set: explore and learn, unset: greedy, learning frozen;
    ``script`` set: take those actions (a demonstration) and learn from them.
    ``skip_no_ops``: leave out the actions that changed nothing where the episode stands,
    as the agent does. ``watch``: shown the start and every step."""
    env = make_env(env_id, seed, games)
    try:
        obs = env.reset()
        if watch is not None:
            watch.start(obs)
        ctx = EpisodeText.start(obs.task, obs.text)
        admissible, info = obs.admissible, obs.info
        steps: list[ValueStep] = []
        moves: list[Move] = []
        enabled: list[list[str]] = []  # per step: the actions it made admissible
        acting = values.snapshot()  # nothing is learned before the episode ends
        for t in range(max_steps if script is None else len(script)):
            choices = admissible  # a demonstration takes its own actions: no filter
            if script is None and skip_no_ops and len(admissible) > 1:
                useless = no_op_actions(obs.text, moves, ctx.observation)
                choices = [a for a in admissible if a not in useless] or admissible
            if script is not None:
                action = script[t]
            elif not admissible:
                break
            elif rng is None:
                action = acting.propose(ctx, choices, k=1)[0].action
            elif acting.active():
                action, _ = acting.explore_choice(ctx, choices, rng)
            else:
                action = choices[rng.randrange(len(choices))]
            view = analyse(ctx, action)
            res = env.step(action)
            if watch is not None:
                watch.step(choices, action, res)
            steps.append(
                ValueStep(
                    state=ctx.observation[:STATE_TEXT_CHARS],
                    action=action,
                    reward=res.reward,
                    features=view.features,
                    signature=view.signature,
                    source=view.source,
                )
            )
            ctx.observe(action, res.text, res.reward, view)
            steps[-1].discovered = ctx.discovered[-1]
            moves.append(Move(action, res.text, res.reward))
            enabled.append(newly_admissible(admissible, res.admissible))
            admissible, info = res.admissible, res.info
            if res.done:
                break
        made_possible = enablers([s.action for s in steps], enabled)
        for step, enabler in zip(steps, made_possible, strict=True):
            step.enabler = enabler
        if rng is not None or script is not None:
            # A demonstration's record says so: its episode id starts with "demonstration:".
            name = f"{env_id}:{seed}" if script is None else f"demonstration:{env_id}:{seed}"
            prov = Provenance(episode_id=name, env_id=env_id, seed=seed)
            values.learn(steps, info.won, info.lost, prov)
    finally:
        env.close()
    score = info.score / info.max_score if info.max_score else 0.0
    return Episode(seed=seed, won=info.won, score=score, steps=len(steps))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.values_bench",
        description=(__doc__ or "").split("\n\n")[0],
    )
    ap.add_argument("--env", default="textworld:cooking")
    ap.add_argument("--train-seeds", default="0-59")
    ap.add_argument("--test-seeds", default="1000-1019")
    ap.add_argument("--runs", default="1-3", help="exploration seeds, one run each (default 1-3)")
    ap.add_argument("--max-steps", type=int, default=20)
    ap.add_argument(
        "--keep-no-ops",
        action="store_true",
        help="offer the actions that changed nothing, too (the agent's agent.skip_no_ops=false)",
    )
    ap.add_argument(
        "--config", type=Path, help="settings file (TOML or YAML); its [memory.values] applies"
    )
    ap.add_argument("--json", action="store_true", help="print JSON lines instead of the table")
    args = ap.parse_args(argv)
    return run_script(lambda err: _run(args, err))


def _run(args: argparse.Namespace, err: Console) -> int:
    train, test, runs = (
        parse_seeds(args.train_seeds),
        parse_seeds(args.test_seeds),
        parse_seeds(args.runs),
    )
    if args.max_steps < 1:
        raise EvolventError(f"--max-steps must be >= 1 (got {args.max_steps})")
    settings = load_settings(args.config)
    games, params = settings.games_path, settings.memory.values
    skip = not args.keep_no_ops
    results = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        for run in runs:
            task = bar.add_task(f"run {run}", total=len(train) + len(test))
            values = MemoryStore.in_memory(HashingEmbedder(), values=params).values
            rng = random.Random(run)
            tr, ho = [], []
            for seed in train:
                tr.append(
                    play(values, args.env, seed, games, args.max_steps, rng, skip_no_ops=skip)
                )
                bar.advance(task)
            for seed in test:
                ho.append(
                    play(values, args.env, seed, games, args.max_steps, None, skip_no_ops=skip)
                )
                bar.advance(task)
            results.append(Run(run=run, train=tr, held_out=ho))
    if args.json:
        for r in results:
            print(r.model_dump_json())
        return 0
    changed = params.model_dump(exclude_defaults=True)
    tuned = ", ".join(f"{k}={v}" for k, v in changed.items()) or "default parameters"
    t = Table(
        title=f"step values alone: {args.env}, train {args.train_seeds}, "
        f"held-out {args.test_seeds}; {tuned}"
    )
    for col in ("run", "train score per 10", "train wins", "held-out wins", "held-out score"):
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(
            str(r.run),
            " ".join(f"{x:.2f}" for x in r.train_per_10()),
            f"{sum(e.won for e in r.train)}/{len(train)}",
            f"{sum(e.won for e in r.held_out)}/{len(test)}",
            f"{statistics.mean(e.score for e in r.held_out):.2f}",
        )
    Console(width=160).print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
