"""``evolvent runs``: the runs ``evolvent run`` started, to find the id ``--resume`` takes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agent.consoles import stderr_console, stdout_console
from agent.errors import EvolventError


def runs(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Runs to show.")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per run.")] = False,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML or YAML settings file (also EVOLVENT_CONFIG)."),
    ] = None,
) -> None:
    """List the runs `evolvent run` started, newest first, and which can be resumed."""
    from agent.checkpoint import list_runs
    from agent.config import load_settings
    from agent.tasks import TEXT_ENV_ID

    err = stderr_console()
    try:
        path = load_settings(config).checkpoint_path
        found = list_runs(path, limit)
    except EvolventError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if json_out:
        for r in found:
            print(r.model_dump_json())
        return
    if not found:
        err.print(f"no runs in {path}", highlight=False, soft_wrap=True)
        return
    t = Table(title=f"runs ({len(found)} shown, newest first)")
    for col in ("run", "started", "plays", "episodes", "status"):
        t.add_column(col)
    for r in found:
        s = r.spec
        plays = "a text task" if s.env == TEXT_ENV_ID else f"{s.env} from seed {s.seed}"
        t.add_row(
            r.run_id,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created)),
            plays,
            f"{r.finished}/{s.episodes} finished",
            "complete" if r.complete else "unfinished",
        )
    stdout_console().print(t)
    unfinished = [r.run_id for r in found if not r.complete]
    if unfinished:
        err.print(
            f"finish one with `evolvent run --resume {unfinished[0]}` (unless a process is "
            "still playing it)",
            highlight=False,
            soft_wrap=True,
        )
