"""Framework overhead with an instant LLM: where an episode's wall time goes, and episodes/s.

    .venv/bin/python -m benchmarks.overhead_bench
    .venv/bin/python -m benchmarks.overhead_bench --envs toy:keys --embedders hashing --json

The LLM is the instant scripted endpoint of ``benchmarks.harness.endpoint`` (a subprocess on
loopback, answering every completion at once and validly: a hash of the prompt picks among
the admissible actions), reached through the agent's real client (``llm.base_url``: litellm
over HTTP). So an episode's time is its LLM calls (the client's round trips, near zero on
the server side), the environment's steps, and everything else: memory (embedding and
vector-store work), graph, checkpoints, prompts — the framework's own cost.

Every configuration (environment × embedder × concurrency) runs ``evolvent bench``'s harness
(one arm, default ``full``: every memory kind and tools on) in a fresh directory, so memory
starts empty each time; games are generated, the endpoint started, litellm imported and the
embedder loaded before any timing. Columns: per-episode accounting summed over the run's
episodes (``EpisodeResult``: wall, LLM, env, memory seconds); ``overhead %`` = the share of
wall time outside the LLM and the environment (memory included); ``memory %`` that part
spent in memory; ``framework %`` the rest (graph, checkpoints, prompts); ``graph floor %``
the part of the wall time that the agent's graph with empty nodes takes for as many steps
(``benchmarks.graph_floor``: LangGraph and its SQLite checkpoints, written as
``--durability`` says, the overhead no node can remove; measured once per run);
``ms/step`` wall per executor step;
``episodes/s`` over the whole harness run (learning between episodes and the batch schedule
included) — with ``--concurrency 1`` (the stream) and 4 (batches of 4).
``--durability`` sets ``agent.durability`` (default ``sync``: a checkpoint after every node,
before the next runs; ``async``; ``exit``: one per episode run), ``--steps-per-node``
``agent.steps_per_node`` (default 1: each executor step a node of its own; more: that many
steps in one run of the executor node, one super-step and checkpoint for all of them).
``--llm-delay-ms`` gives every completion a latency, to see what concurrency buys when the
LLM, not the framework, is the bottleneck. ``--breakdown`` also times each memory operation
(Chroma calls, the step values' learning, fit and scoring, episodic recall and learning,
embedding; ``benchmarks.breakdown``) and prints where the memory share went.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agent.config import Durability, Settings, load_settings
from agent.errors import EvolventError
from benchmarks.breakdown import OpTotal, timed_operations
from benchmarks.graph_floor import DURABILITIES, measure_floor
from benchmarks.scriptmain import run_script

EMBEDDERS = ("hashing", "minilm")


class Row(BaseModel):
    """One configuration's totals."""

    env: str
    embedder: str
    concurrency: int
    episodes: int
    steps: int
    wall_s: float
    llm_s: float
    env_s: float
    memory_s: float
    overhead_pct: float
    """Wall time outside the LLM and the environment (memory included), in %."""
    memory_pct: float
    framework_pct: float
    """Wall time outside the LLM, the environment and memory, in %."""
    graph_floor_pct: float = 0.0
    """The part of the wall time that the agent's graph with empty nodes would take for
    these steps (``benchmarks.graph_floor``), in %: overhead that no node can remove."""
    ms_per_step: float
    elapsed_s: float
    """Wall clock of the whole harness run."""
    episodes_per_s: float
    breakdown: dict[str, OpTotal] | None = None
    """With ``--breakdown``: calls and ms per memory operation over the whole run
    (``benchmarks.breakdown``; inclusive times; the mistake notebook's re-plays, which the
    episodes' shares leave out, included)."""


def aggregate(
    records: Sequence[dict[str, Any]],
    env: str,
    embedder: str,
    concurrency: int,
    elapsed: float,
    floor_ms_per_step: float = 0.0,
) -> Row:
    """Sum the per-episode accounting of a harness run into a ``Row`` (``floor_ms_per_step``:
    the graph floor, ``benchmarks.graph_floor``)."""
    wall = sum(float(r["wall_s"]) for r in records)
    llm = sum(float(r["llm_s"]) for r in records)
    env_s = sum(float(r["env_s"]) for r in records)
    mem = sum(float(r["memory_s"]) for r in records)
    steps = sum(int(r["steps"]) for r in records)

    def pct(x: float) -> float:
        return round(100.0 * x / wall, 2) if wall > 0 else 0.0

    return Row(
        env=env,
        embedder=embedder,
        concurrency=concurrency,
        episodes=len(records),
        steps=steps,
        wall_s=round(wall, 3),
        llm_s=round(llm, 3),
        env_s=round(env_s, 3),
        memory_s=round(mem, 3),
        overhead_pct=pct(max(0.0, wall - llm - env_s)),
        memory_pct=pct(mem),
        framework_pct=pct(max(0.0, wall - llm - env_s - mem)),
        graph_floor_pct=pct(steps * floor_ms_per_step / 1000.0),
        ms_per_step=round(1000.0 * wall / steps, 2) if steps else 0.0,
        elapsed_s=round(elapsed, 3),
        episodes_per_s=round(len(records) / elapsed, 3) if elapsed > 0 else 0.0,
    )


def _base(
    home: Path,
    url: str,
    games: Path,
    max_steps: int,
    durability: Durability = "sync",
    steps_per_node: int = 1,
) -> Settings:
    return load_settings(
        None,
        home=str(home),
        games_dir=str(games),
        **{
            "llm.base_url": url,
            "limits.max_steps": max_steps,
            "agent.durability": durability,
            "agent.steps_per_node": steps_per_node,
        },
    )


def _warm_up(url: str, envs: Sequence[str], embedders: Sequence[str], games: Path) -> None:
    """Pay the one-time costs before timing: litellm's import, the embedding model, the
    environments' modules and games."""
    from agent.config import LLMSettings
    from agent.llm.factory import make_client
    from benchmarks.envs.registry import make_env
    from memory.embeddings import default_embedder

    client, _ = make_client(LLMSettings(base_url=url))
    try:
        client.choose("warm up", ["a", "b"])
    finally:
        client.close()
    if "minilm" in embedders:
        default_embedder().embed(["warm up"])
    for env_id in envs:
        env = make_env(env_id, 0, games)
        env.reset()
        env.close()


def measure(
    env: str,
    embedder: str,
    concurrency: int,
    *,
    url: str,
    games: Path,
    args: argparse.Namespace,
    floor_ms_per_step: float = 0.0,
) -> Row:
    """Run the harness once for this configuration, in a fresh directory."""
    from benchmarks.harness import BenchSpec, default_backends, run_bench

    with tempfile.TemporaryDirectory(prefix="evolvent-overhead-") as tmp:
        spec = BenchSpec.parse(
            env=env,
            train_seeds=args.train_seeds,
            test_seeds=args.test_seeds,
            arms=args.arm,
            out=Path(tmp) / "out",
            max_steps=args.max_steps,
            concurrency=concurrency,
        )
        base = _base(
            Path(tmp) / "home",
            url,
            games,
            args.max_steps,
            args.durability,
            args.steps_per_node,
        )
        quiet = Console(file=io.StringIO(), force_terminal=False)
        timing: AbstractContextManager[dict[str, OpTotal]] = (
            timed_operations() if args.breakdown else nullcontext({})
        )
        with timing as totals:
            started = time.perf_counter()
            records = run_bench(spec, base, backends=default_backends(embedder), console=quiet)
            elapsed = time.perf_counter() - started
    row = aggregate(records, env, embedder, concurrency, elapsed, floor_ms_per_step)
    if args.breakdown:
        row.breakdown = dict(sorted(totals.items(), key=lambda kv: -kv[1].ms))
    return row


def breakdown_table(row: Row) -> Table:
    """A row's memory operations, most time first."""
    t = Table(
        title=f"memory operations: {row.env}, {row.embedder}, N={row.concurrency} "
        f"(inclusive times, the notebook's re-plays included; 'in episodes': the part inside "
        f"the episodes' memory time, {1000 * row.memory_s:.0f} ms)"
    )
    titles = ("operation", "calls", "ms", "ms/call", "ms in episodes", "ms per episode recorded")
    for title in titles:
        t.add_column(title, justify="left" if title == "operation" else "right")
    for name, total in (row.breakdown or {}).items():
        t.add_row(
            name,
            str(total.calls),
            f"{total.ms:.1f}",
            f"{total.ms / total.calls:.3f}" if total.calls else "-",
            f"{total.episode_ms:.1f}",
            f"{total.episode_ms / row.episodes:.2f}" if row.episodes else "-",
        )
    return t


def table(
    rows: Sequence[Row], delay_ms: float = 0.0, durability: str = "sync", steps_per_node: int = 1
) -> Table:
    what = f"LLM answering after {delay_ms:g} ms" if delay_ms else "instant LLM"
    t = Table(
        title=f"framework overhead ({what} over HTTP, {durability!r} checkpoints, "
        f"{steps_per_node} step(s) per executor node)"
    )
    cols = [
        ("env", "env"),
        ("embedder", "embedder"),
        ("N", "concurrency"),
        ("episodes", "episodes"),
        ("steps", "steps"),
        ("wall s", "wall_s"),
        ("LLM s", "llm_s"),
        ("env s", "env_s"),
        ("memory s", "memory_s"),
        ("overhead %", "overhead_pct"),
        ("memory %", "memory_pct"),
        ("framework %", "framework_pct"),
        ("graph floor %", "graph_floor_pct"),
        ("ms/step", "ms_per_step"),
        ("episodes/s", "episodes_per_s"),
    ]
    for title, _ in cols:
        t.add_column(title, justify="left" if title in ("env", "embedder") else "right")
    for r in rows:
        d = r.model_dump()
        t.add_row(*(f"{d[k]:.2f}" if isinstance(d[k], float) else str(d[k]) for _, k in cols))
    return t


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead_bench",
        description=(__doc__ or "").split("\n\n")[0],
    )
    ap.add_argument("--envs", default="textworld:cooking,toy:keys", help="comma list of env ids")
    ap.add_argument("--embedders", default="hashing,minilm", help="hashing and/or minilm")
    ap.add_argument("--concurrency", default="1,4", help="comma list of N (default 1,4)")
    ap.add_argument("--arm", default="full", help="the arm played (default full)")
    ap.add_argument("--train-seeds", default="0-7")
    ap.add_argument("--test-seeds", default="1000-1001")
    ap.add_argument("--max-steps", type=int, default=15)
    ap.add_argument(
        "--llm-delay-ms",
        type=float,
        default=0.0,
        help="make every completion take this long (default 0: instant)",
    )
    ap.add_argument(
        "--durability",
        choices=DURABILITIES,
        default="sync",
        help="when checkpoints are written (agent.durability; default sync)",
    )
    ap.add_argument(
        "--steps-per-node",
        type=int,
        default=1,
        help="executor steps per run of the executor node (agent.steps_per_node; default 1)",
    )
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="also time each memory operation (calls, ms; a little slower): "
        "a table per row, or each row's 'breakdown' in --json",
    )
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = ap.parse_args(argv)
    return run_script(lambda err: _run(args, err))


MAX_STEPS = 10_000
"""The most steps an episode may be given (as the REST service's ceiling)."""
MAX_DELAY_MS = 60_000


def _run(args: argparse.Namespace, err: Console) -> int:
    envs, embedders = _csv(args.envs), _csv(args.embedders)
    bad = sorted(set(embedders) - set(EMBEDDERS))
    if bad:
        raise EvolventError(f"unknown embedder {bad[0]!r}; valid: {', '.join(EMBEDDERS)}")
    try:
        levels = [int(n) for n in _csv(args.concurrency)]
    except ValueError:
        raise EvolventError(f"bad --concurrency {args.concurrency!r}; e.g. 1,4") from None
    if args.steps_per_node < 1:
        raise EvolventError(f"bad --steps-per-node {args.steps_per_node}; it must be at least 1")
    if not 1 <= args.max_steps <= MAX_STEPS:
        raise EvolventError(f"bad --max-steps {args.max_steps}; it must be 1 to {MAX_STEPS}")
    if not 0 <= args.llm_delay_ms <= MAX_DELAY_MS:  # NaN and infinity too
        raise EvolventError(
            f"bad --llm-delay-ms {args.llm_delay_ms:g}; it must be 0 to {MAX_DELAY_MS}"
        )
    for flag, given in (("--envs", envs), ("--embedders", embedders), ("--concurrency", levels)):
        if not given:
            raise EvolventError(f"{flag} names nothing to measure")
    if any(n < 1 for n in levels):
        raise EvolventError(f"bad --concurrency {args.concurrency!r}; each N must be at least 1")
    from benchmarks.envs.registry import check_env_id
    from benchmarks.harness.spec import parse_seeds

    for env in envs:  # before anything is measured
        check_env_id(env)
    parse_seeds(args.train_seeds)
    parse_seeds(args.test_seeds)
    with err.status("measuring the graph floor"):
        floor = measure_floor(
            args.max_steps, durability=args.durability, steps_per_node=args.steps_per_node
        )
    rows = run_all(envs, embedders, levels, args, err, floor.ms_per_step)
    if args.json:
        meta = {
            "llm_delay_ms": args.llm_delay_ms,
            "arm": args.arm,
            "max_steps": args.max_steps,
            "durability": args.durability,
            "steps_per_node": args.steps_per_node,
        }
        meta["graph_floor"] = floor.model_dump()
        print(json.dumps({**meta, "rows": [r.model_dump() for r in rows]}, indent=1))
    else:
        out = Console(width=200)
        out.print(table(rows, args.llm_delay_ms, args.durability, args.steps_per_node))
        out.print(
            f"graph floor (the agent's graph with empty nodes, {args.durability!r} SQLite "
            f"checkpoints, {args.steps_per_node} step(s) per executor node, "
            f"{floor.steps}-step episodes): {floor.ms_per_step:.2f} ms per step"
        )
        for row in rows if args.breakdown else []:
            out.print(breakdown_table(row))
    return 0


def run_all(
    envs: Sequence[str],
    embedders: Sequence[str],
    levels: Sequence[int],
    args: argparse.Namespace,
    err: Console,
    floor_ms_per_step: float = 0.0,
) -> list[Row]:
    """Every configuration, each row as it is measured (with a progress bar on a TTY)."""
    from benchmarks.envs.registry import pregenerate
    from benchmarks.harness.endpoint import instant_endpoint
    from benchmarks.harness.spec import parse_seeds

    games = load_settings(None).games_path
    seeds = [*parse_seeds(args.train_seeds), *parse_seeds(args.test_seeds)]
    rows: list[Row] = []
    with instant_endpoint(delay_ms=args.llm_delay_ms) as url:
        with err.status("generating games, warming up"):
            for env in envs:
                pregenerate(env, seeds, games)
            _warm_up(url, envs, embedders, games)
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=not err.is_terminal,
        )
        configs = [(e, m, n) for e in envs for m in embedders for n in levels]
        with progress:
            bar = progress.add_task("overhead", total=len(configs))
            for env, emb, n in configs:
                progress.update(bar, description=f"{env} {emb} N={n}")
                rows.append(
                    measure(
                        env,
                        emb,
                        n,
                        url=url,
                        games=games,
                        args=args,
                        floor_ms_per_step=floor_ms_per_step,
                    )
                )
                progress.advance(bar)
    return rows


if __name__ == "__main__":
    sys.exit(main())
