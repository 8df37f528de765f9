"""``evolvent bench``: the harness from the command line.

Mounted by ``agent/cli.py``; heavy modules are imported inside the command so that
``evolvent --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from agent.consoles import stderr_console, stdout_console
from agent.errors import EvolventError

if TYPE_CHECKING:
    from rich.table import Table

err = stderr_console()
out = stdout_console()


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def bench(
    env: Annotated[
        str, typer.Option("--env", help="Environment id (see `evolvent envs`).")
    ] = "textworld:cooking",
    train_seeds: Annotated[
        str, typer.Option("--train-seeds", help="Training stream seeds, e.g. 0-39 or 0-9,20.")
    ] = "0-39",
    test_seeds: Annotated[
        str,
        typer.Option("--test-seeds", help="Held-out seeds, played frozen before and after."),
    ] = "1000-1019",
    arms: Annotated[
        str,
        typer.Option(
            "--arms", help="Comma list of arms: frozen, episodic, notes, experiences, tools, full."
        ),
    ] = "frozen,episodic,notes,experiences,tools,full",
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Repeats of every arm.")] = 1,
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Output directory; rerun with the same one to resume."),
    ] = Path("bench-out"),
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Step limit per episode.")
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            min=1,
            help="Episodes at once: the batch size N of the batch-synchronous schedule "
            "(see above). 1 with the thread executor: the classic sequential stream.",
        ),
    ] = 1,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="Where the episodes of a batch run: thread (worker threads here) or ray "
            "(Ray tasks; memory at a Chroma server: memory.url, else one started for the "
            "run in OUT/state/chroma).",
        ),
    ] = "thread",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster to join (e.g. ray://head:10001 or auto); unset: a local Ray "
            "instance for the run.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML or YAML settings file (also EVOLVENT_CONFIG)."),
    ] = None,
    llm_url: Annotated[
        str | None,
        typer.Option("--llm-url", help="OpenAI-compatible base URL; unset: embedded backbone."),
    ] = None,
) -> None:
    """Benchmark the arms: held-out seeds, a training stream, the held-out seeds again.

    Writes OUT/episodes.jsonl (resumable), learning curves and report.md/json; the held-out
    seeds are played with learning frozen.

    Schedule: with --concurrency 1 and the thread executor every episode learns as it ends.
    Otherwise each phase runs in batches of N consecutive episodes: all episodes of a batch
    play at once against the memory and tools left by the previous batch, writing nothing;
    at the batch end their learning is applied in task order, exactly as each episode would
    have applied it. Results for a given N do not depend on thread timing or executor.
    A rerun with the same --out resumes, and must keep --executor and --concurrency.
    """
    from agent.config import load_settings
    from benchmarks.harness.runner import run_bench
    from benchmarks.harness.spec import BenchSpec
    from benchmarks.report import write_report

    try:
        spec = BenchSpec.parse(
            env=env,
            train_seeds=train_seeds,
            test_seeds=test_seeds,
            arms=arms,
            out=out_dir,
            repeats=repeats,
            max_steps=max_steps,
            concurrency=concurrency,
            executor=executor,
            ray_address=ray_address,
        )
        overrides: dict[str, Any] = {"llm.base_url": llm_url, "limits.max_steps": max_steps}
        settings = load_settings(config, **overrides)
        run_bench(spec, settings, console=err)
        report = write_report(spec.out)
    except EvolventError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        err.print(
            f"[yellow]interrupted[/]: finished episodes are in {out_dir}/episodes.jsonl; "
            "run the same command again to resume",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    out.print(summary_table(report["arms"]))
    out.print(f"report: {spec.out / 'report.md'}", highlight=False)


def summary_table(arms: dict[str, Any]) -> Table:
    """One row per arm: held-out success and score before/after, uplift, training, cost."""
    from rich.table import Table

    t = Table(title="benchmark summary")
    for col in ("arm", "pre", "post", "uplift", "pre score", "post score", "train", "tokens"):
        t.add_column(col, justify="left" if col == "arm" else "right")
    t.add_column("wall s", justify="right")
    for arm, d in arms.items():
        p = d["phases"]
        t.add_row(
            arm,
            f"{p['pre']['success_rate']:.2f}",
            f"{p['post']['success_rate']:.2f}",
            f"{d['uplift']['success_rate']:+.2f}",
            f"{p['pre']['mean_score']:.2f}",
            f"{p['post']['mean_score']:.2f}",
            f"{p['train']['success_rate']:.2f}",
            f"{sum(s['total_tokens'] for s in p.values()):.0f}",
            f"{sum(s['total_wall_s'] for s in p.values()):.1f}",
        )
    return t
