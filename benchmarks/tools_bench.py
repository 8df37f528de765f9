"""Tools over a stream of generated TextWorld games: what is mined, validated, rejected and
used, the convergence metric per batch, and steps per won game with tools vs without.

    .venv/bin/python -m benchmarks.tools_bench --games 30 --batch 10

The agent runs with the configured backbone (default: the embedded Gemma 3 270M) and a
Toolsmith over a SQLite registry in a fresh home. By default (``--action-policy follow``,
as in the cooking arms of ``evolvent bench``) the step-value function picks each action once
it has learned from an episode, and a validated macro whose first step it picked runs in
its place (``agent.tool_policy = follow``); ``--action-policy llm`` leaves actions to the
LLM. After the stream, the tools agent plays ``--held-out N`` other games (the seeds after
the warm-up ones) with learning frozen, each twice: with its tools and without, so that
steps per won game compare the same memory with and without tools. Each episode is
appended to a JSONL file as it finishes. The baseline pass (``--baseline``, on by default)
plays the same seeds with a fresh home and ``agent.use_tools=False`` (no tool offered, none
mined). ``--warmup N`` first observes the walkthroughs of N other seeds as won episodes
(oracle demonstrations, reported as such), so that mining, replay validation and tool use
have material even when the backbone rarely wins; the step values of both passes learn from
the same walkthroughs (records whose episode id starts with ``demonstration:``). The mistake
notebook is off (``memory.notebook_batch=0``): its re-plays would triple the time and
measure memory, not tools.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.agent import Agent
from agent.config import Settings, load_settings
from agent.llm.base import LLMClient
from agent.result import EpisodeResult
from benchmarks.envs.base import Env
from benchmarks.envs.registry import is_env_id, make_env, pregenerate, unknown_env
from benchmarks.scriptmain import run_script
from benchmarks.values_bench import play as play_values
from memory.embeddings import Embedder, default_embedder
from memory.values import ValueFunction
from sandbox.factory import get_sandbox
from toolsmith.convergence import ConvergenceCounter
from toolsmith.models import Tool
from toolsmith.replay import replay_score
from toolsmith.sqlite_registry import SqliteToolRegistry
from toolsmith.synthesizer import Toolsmith, ToolsmithConfig


def settings_for(
    home: Path,
    max_steps: int,
    games_dir: Path,
    use_tools: bool,
    tool_policy: str = "follow",
    action_policy: str = "follow",
) -> Settings:
    return load_settings(
        None,
        **{
            "home": str(home),
            "limits.max_steps": max_steps,
            "memory.notebook_batch": 0,
            "games_dir": str(games_dir),
            "agent.use_tools": use_tools,
            "agent.tool_policy": tool_policy,
            "memory.action_policy": action_policy,
        },
    )


def episode_row(r: EpisodeResult, pass_name: str) -> dict[str, Any]:
    tool_calls = len({s.index for s in r.trajectory if s.tool})
    return {
        "pass": pass_name,
        "seed": r.seed,
        "success": r.success,
        "score": r.score,
        "max_score": r.max_score,
        "steps": r.steps,
        "actions": r.actions,
        "tool_calls": tool_calls,
        "tools_used": r.tools_used,
        "tools_written": r.tools_written,
        "stop_reason": r.stop_reason,
        "wall_s": round(r.wall_s, 2),
    }


def walkthrough(env_id: str, seed: int, games: Path) -> list[str]:
    """The game's own solution (an oracle demonstration)."""
    env = make_env(env_id, seed, games)
    given = env.reset().info.extra.get("walkthrough")
    env.close()
    return [str(a) for a in given] if isinstance(given, list) else []


def warm_up(smith: Toolsmith, env_id: str, walks: dict[int, list[str]]) -> list[Tool]:
    """Observe the games' own walkthroughs (``walks``: seed → walkthrough; oracle
    demonstrations) as won episodes."""
    assert smith.env_factory is not None
    new: list[Tool] = []
    for seed, walk in walks.items():
        score = replay_score(smith.env_factory, env_id, seed, walk)
        new += smith.observe(f"walkthrough-{seed}", env_id, walk, True, seed=seed, score=score)
    # Demonstrations are not episodes of the stream: the convergence batches start after them.
    smith.counter = ConvergenceCounter(batch_size=smith.config.batch_size)
    return new


def demonstrate(
    values: ValueFunction, env_id: str, walks: dict[int, list[str]], games: Path
) -> int:
    """The step values learn from the walkthroughs ``walks`` (seed → walkthrough); returns
    how many won."""
    won = 0
    for seed, walk in walks.items():
        won += play_values(values, env_id, seed, games, len(walk), None, script=walk).won
    return won


def play(
    name: str,
    settings: Settings,
    llm: LLMClient,
    embedder: Embedder,
    cfg: ToolsmithConfig,
    seeds: Sequence[int],
    env_id: str,
    log: Path,
    warmup: Sequence[int] = (),
    held_out: Sequence[int] = (),
) -> tuple[Toolsmith, list[dict[str, Any]], list[dict[str, Any]]]:
    """Play ``seeds`` in order with one agent, then (with tools on) each of ``held_out``
    with learning frozen, with and without tools; returns its toolsmith and the rows of
    the stream and of the held-out games."""
    games = settings.games_path

    def env_factory(eid: str, seed: int) -> Env:
        return make_env(eid, seed, games)

    registry = SqliteToolRegistry(settings.memory_path / "tools.sqlite", embedder, "bench")
    smith = Toolsmith(registry, cfg, env_factory=env_factory, sandbox=get_sandbox("auto"))
    smith.llm = llm
    walks = {seed: walkthrough(env_id, seed, games) for seed in warmup}
    if warmup and settings.agent.use_tools:
        t0 = time.perf_counter()
        made = warm_up(smith, env_id, walks)
        ok = sum(t.status == "active" for t in made)
        print(
            f"[{name}] observed {len(warmup)} walkthroughs (seeds {warmup[0]}-{warmup[-1]}): "
            f"{len(made)} tools, {ok} validated ({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
    rows: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    with Agent(settings, llm=llm, embedder=embedder, toolsmith=smith) as agent:
        if warmup and settings.memory.step_values:
            won = demonstrate(agent.memory.values, env_id, walks, games)
            print(f"[{name}] step values learned from the walkthroughs ({won} won)", flush=True)
        for i, seed in enumerate(seeds):
            rows.append(_episode(agent, name, env_id, seed, i, i, len(seeds), log))
        smith.counter.flush()
        if held_out and settings.agent.use_tools:
            # The same frozen memory plays each held-out game twice: with the tools and
            # without. Tool uses still count in the tools' stats, not in the convergence.
            stream_counter, smith.counter = smith.counter, ConvergenceCounter()
            before = settings.agent.learn, settings.agent.use_tools
            settings.agent.learn = False
            for i, seed in enumerate(held_out):
                for use_tools, label in ((True, "held-out"), (False, "held-out-without-tools")):
                    settings.agent.use_tools = use_tools
                    index = len(seeds) + i  # the agent's episode index; shown: i
                    held.append(_episode(agent, label, env_id, seed, index, i, len(held_out), log))
            settings.agent.learn, settings.agent.use_tools = before
            smith.counter = stream_counter
    return smith, rows, held


def _episode(
    agent: Agent, name: str, env_id: str, seed: int, index: int, i: int, total: int, log: Path
) -> dict[str, Any]:
    """Play one game (the agent's episode ``index``; ``i`` of ``total`` in this phase),
    append its row to ``log`` and print a line."""
    t0 = time.perf_counter()
    r = agent.run(env_id, seed=seed, index=index)
    row = episode_row(r, name)
    with log.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(
        f"[{name}] game {i + 1}/{total} seed {seed}: "
        f"{'WON ' if r.success else 'lost'} score {r.score:g}/{r.max_score:g} "
        f"steps {r.steps} tool calls {row['tool_calls']} "
        f"new tools {len(r.tools_written)} ({time.perf_counter() - t0:.0f}s)",
        flush=True,
    )
    return row


def _mean(xs: Sequence[float]) -> str:
    return f"{statistics.mean(xs):.1f}" if xs else "-"


def won_steps(rows: Sequence[dict[str, Any]]) -> str:
    won = [r for r in rows if r["success"]]
    return (
        f"{len(won)} won, mean steps {_mean([r['steps'] for r in won])} "
        f"(environment actions {_mean([r['actions'] for r in won])})"
    )


def report(
    smith: Toolsmith,
    rows: list[dict[str, Any]],
    base: list[dict[str, Any]],
    held: Sequence[dict[str, Any]] = (),
) -> str:
    tools: list[Tool] = smith.registry.list_tools()
    mined = [t for t in tools if t.provenance.source == "mined"]
    code = [t for t in tools if t.kind == "code"]
    lines = ["", "== tools =="]
    for label, group in (("mined macros", mined), ("LLM code tools", code)):
        by = Counter(t.status for t in group)
        slotted = sum(bool(t.slots) for t in group)
        lines.append(
            f"{label}: {len(group)} ({by['active']} validated, {by['rejected']} rejected"
            f"{f', {slotted} parametrized' if slotted else ''})"
        )
    for t in tools:
        lines.append(
            f"  {t.status:8s} {t.kind:5s} v{t.version} uses {t.uses:3d} ok {t.successes:3d} "
            f"{t.signature if t.slots else t.name}"
            + (f"\n           reason: {t.reason}" if t.status == "rejected" else "")
        )
    refined = [t for t in tools if t.version > 1 and t.change.startswith("doc refined")]
    lines.append(f"docs refined from use: {len(refined)}")
    c = smith.counter
    lines += [
        "",
        "== invocations ==",
        f"steps with a tool offered: {c.offers}; tool invocations: {c.invocations} "
        f"(in {sum(r['tool_calls'] > 0 for r in rows)} of {len(rows)} episodes); "
        f"synthesized {c.synthesized}; rejected {c.rejected}",
        "",
        "== convergence (synthesized / invocations per batch) ==",
        *c.table(),
        "",
        "== steps per won game ==",
        f"with tools, all episodes: {won_steps(rows)} of {len(rows)}",
        f"  won using a tool:      {won_steps([r for r in rows if r['tool_calls']])}",
        f"  won without a tool:    {won_steps([r for r in rows if not r['tool_calls']])}",
    ]
    if base:
        lines.append(f"baseline (no tools offered): {won_steps(base)} of {len(base)}")
    if held:
        with_tools = [r for r in held if r["pass"] == "held-out"]
        without = [r for r in held if r["pass"] != "held-out"]
        used = sum(r["tool_calls"] > 0 for r in with_tools)
        lines += [
            "",
            "== held-out games, learning frozen: the same memory with and without tools ==",
            f"with tools:    {won_steps(with_tools)} of {len(with_tools)} (a tool ran in {used})",
            f"without tools: {won_steps(without)} of {len(without)}",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--games", type=int, default=30)
    p.add_argument("--batch", type=int, default=10, help="episodes per convergence batch")
    p.add_argument("--env", default="textworld:cooking")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=20)
    p.add_argument("--code-every", type=int, default=10, help="failures per code-tool request")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="walkthroughs of other seeds observed as won episodes before the stream, "
        "by the toolsmith and (both passes) the step values",
    )
    p.add_argument(
        "--held-out",
        type=int,
        default=20,
        help="games after the warm-up seeds, played after the stream with learning frozen, "
        "each with and without tools (0: none)",
    )
    p.add_argument(
        "--tool-policy",
        choices=["follow", "llm"],
        default="follow",
        help="follow: run a useful offered tool without asking the LLM; llm: the LLM picks",
    )
    p.add_argument(
        "--action-policy",
        choices=["follow", "llm"],
        default="follow",
        help="follow: the step-value function picks each action (as in the cooking arms), "
        "a tool whose first step it picked runs in its place; llm: the LLM picks",
    )
    p.add_argument("--home", type=Path, default=None, help="state dir (default: a temp dir)")
    p.add_argument("--games-dir", type=Path, default=None, help="generated games cache")
    args = p.parse_args(argv)
    for flag in ("games", "batch", "max_steps"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')} must be at least 1")
    for flag in ("warmup", "held_out"):
        if getattr(args, flag) < 0:
            p.error(f"--{flag.replace('_', '-')} must not be negative")
    if not is_env_id(args.env):
        p.error(str(unknown_env(args.env)))
    if args.home is not None and args.home.exists():
        if not args.home.is_dir():
            p.error(f"--home {args.home} is a file; give a new or empty folder")
        if any(args.home.iterdir()):  # its memory and tools would be learned on
            p.error(f"--home {args.home} holds an earlier run's state; give a new or empty folder")
    return run_script(lambda err: _bench(args))


def _bench(args: argparse.Namespace) -> int:
    home = args.home or Path(tempfile.mkdtemp(prefix="evolvent-tools-bench-"))
    games_dir = args.games_dir or home / "games"
    seeds = list(range(args.first_seed, args.first_seed + args.games))
    warm = list(range(1000 + args.first_seed, 1000 + args.first_seed + args.warmup))
    held_out = list(
        range(
            1000 + args.first_seed + args.warmup,
            1000 + args.first_seed + args.warmup + args.held_out,
        )
    )
    log = home / "episodes.jsonl"
    print(
        f"home {home}; {args.games} games of {args.env}; tool policy {args.tool_policy}; "
        f"action policy {args.action_policy}; "
        f"episodes -> {log}",
        flush=True,
    )
    t0 = time.perf_counter()
    pregenerate(args.env, seeds + warm + held_out, games_dir)
    print(f"games ready in {time.perf_counter() - t0:.0f}s", flush=True)

    settings = settings_for(
        home / "tools", args.max_steps, games_dir, True, args.tool_policy, args.action_policy
    )
    from agent.llm.factory import make_client

    llm, url = make_client(settings.llm)
    embedder = default_embedder()
    print(f"backbone {settings.llm.model} at {url}", flush=True)
    cfg = ToolsmithConfig(batch_size=args.batch, code_every=args.code_every)
    try:
        smith, rows, held = play(
            "tools", settings, llm, embedder, cfg, seeds, args.env, log, warm, held_out
        )
        base: list[dict[str, Any]] = []
        if args.baseline:
            base_settings = settings_for(
                home / "baseline",
                args.max_steps,
                games_dir,
                False,
                action_policy=args.action_policy,
            )
            base_smith, base, _ = play(
                "baseline", base_settings, llm, embedder, cfg, seeds, args.env, log, warm
            )
            base_smith.registry.close()
        print(report(smith, rows, base, held), flush=True)
        smith.registry.close()
        print(f"\ntotal {time.perf_counter() - t0:.0f}s", flush=True)
    finally:
        llm.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
