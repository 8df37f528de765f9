"""What every benchmark script does with a user error or Ctrl-C."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

from agent.consoles import stderr_console
from agent.errors import EvolventError, os_problem


def run_script(body: Callable[[Console], int]) -> int:
    """Run a script's ``body`` (given the stderr console; returns the exit code). A user
    error prints one line and exits 2, never a stack trace; Ctrl-C exits 130."""
    err = stderr_console()
    try:
        return body(err)
    except EvolventError as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        return 2
    except OSError as e:
        if e.filename is None:
            raise
        err.print(f"[bold red]error:[/] {os_problem(e)}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        return 130
