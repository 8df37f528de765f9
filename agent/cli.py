"""The ``evolvent`` command line.

Heavy modules (langgraph, litellm, torch, textworld) are imported inside the commands so
that ``evolvent --help`` answers at once.
"""

from __future__ import annotations

import faulthandler
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

# Typer vendors click; its parser raises these classes, not the `click` package's.
from typer._click.core import Context as ClickContext
from typer._click.core import ParameterSource
from typer._click.exceptions import NoSuchOption

import agent as agent_pkg
from agent.consoles import stderr_console, stdout_console
from agent.errors import EvolventError, os_problem

if TYPE_CHECKING:
    from agent.config import Settings
    from agent.result import EpisodeResult

err = stderr_console()
out = stdout_console()


class _Command(typer.core.TyperCommand):
    """Lists the valid options when a flag is unknown, instead of only suggesting one."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except NoSuchOption as e:
            valid = sorted({o for p in self.get_params(ctx) for o in p.opts if o.startswith("-")})
            e.message = f"no such option: {e.option_name}. Valid options: {', '.join(valid)}"
            raise


app = typer.Typer(
    name="evolvent",
    help="LLM agents that improve themselves while they work, without changing model weights.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # plain help text: docstring paragraphs are re-wrapped
)


from agent import cli_memory, cli_tools  # noqa: E402 - mounted after the root app exists
from agent.cli_runs import runs  # noqa: E402
from agent.server.cli import serve  # noqa: E402
from benchmarks.harness.cli import bench  # noqa: E402

app.add_typer(cli_memory.app, name="memory")
app.add_typer(cli_tools.app, name="tools")
app.command("serve", cls=_Command)(serve)
app.command("bench", cls=_Command)(bench)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"evolvent {agent_pkg.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Evolvent: play tasks, learn into memory and tools, get better with experience."""


def _fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="TOML or YAML settings file (also EVOLVENT_CONFIG)."),
]
LlmUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--llm-url",
        help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (vLLM). "
        "Unset: the embedded CPU backbone.",
    ),
]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model name at the endpoint.")]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    from agent.config import load_settings

    return load_settings(config, **overrides)


@app.command(cls=_Command)
def run(
    ctx: typer.Context,
    env: Annotated[
        str | None,
        typer.Option("--env", help="Environment id (see `evolvent envs`), e.g. textworld:cooking."),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", help="A free-text task instead of an environment.")
    ] = None,
    episodes: Annotated[int, typer.Option("--episodes", min=1, help="Episodes to play.")] = 1,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="Seed of the first game; episode i uses seed+i.")
    ] = 0,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps", min=1, help="Step limit per episode.")
    ] = None,
    token_budget: Annotated[
        int | None, typer.Option("--token-budget", min=1, help="Token budget per episode.")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per episode instead of tables.")
    ] = False,
    thread_id: Annotated[
        str | None,
        typer.Option("--thread-id", help="Name the new run's thread (episode i: ID-i)."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="Resume a killed run or episode by its thread id."),
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", help="Memory namespace.")] = None,
    llm_url: LlmUrlOpt = None,
    model: ModelOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Play episodes with the agent; it learns from each one."""
    from agent.runner import RunRequest, run_cli

    named = (("--env", env), ("--task", task), ("--thread-id", thread_id), ("--resume", resume))
    for flag, given in named:
        if given is not None and not given.strip():  # as the REST API refuses a blank task
            _fail(f"{flag} must not be blank")
    if resume:
        # A run resumes as it was started: its episodes, seeds and limits are stored with it.
        fixed = [flag for flag, given in named[:3] if given]
        fixed += [
            "--" + name.replace("_", "-")
            for name in ("episodes", "seed", "max_steps", "token_budget")
            if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)
        ]
        if fixed:
            _fail(
                "--resume continues a run as it was started (its episodes, seeds and limits): "
                f"don't combine it with {'/'.join(fixed)}"
            )
    if not resume and not env and not task:
        env = "textworld:cooking"
    if env and task:
        _fail("give either --env or --task, not both")
    if env:
        from benchmarks.envs.registry import is_env_id, unknown_env

        if not is_env_id(env):
            _fail(str(unknown_env(env)))
    started: list[str] = []  # the id that resumes the run, once it exists
    try:
        settings = _settings(
            config,
            **{
                "llm.base_url": llm_url,
                "llm.model": model,
                "memory.namespace": namespace,
                "limits.max_steps": max_steps,
                "limits.token_budget": token_budget,
            },
        )
        request = RunRequest(
            env=env, task=task, episodes=episodes, seed=seed, thread_id=thread_id, resume=resume
        )
        results = run_cli(
            settings, request, json_out=json_out, err=err, out=out, on_run=started.append
        )
    except EvolventError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        err.print(
            "[yellow]interrupted[/]: "
            + (
                "every finished step is checkpointed; continue with "
                f"`evolvent run --resume {started[0]}`"
                if started
                else "no episode had started; nothing to resume"
            ),
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None
    if not json_out:
        _print_summary(results)


app.command("runs", cls=_Command)(runs)  # listed in --help right after `run`


def _print_summary(results: list[EpisodeResult]) -> None:
    from rich.table import Table

    if not results:
        return
    t = Table(title="Episodes", show_lines=False)
    t.add_column("thread")
    for col in ("seed", "won", "score", "steps", "tokens", "wall s", "s/step", "LLM %", "env %"):
        t.add_column(col, justify="right")
    for col in ("memory %", "overhead %", "overhead ms/step"):
        t.add_column(col, justify="right")
    for r in results:
        t.add_row(
            r.thread_id,
            str(r.seed),
            "yes" if r.success else "no",
            f"{r.score:g}/{r.max_score:g}",
            str(r.steps),
            str(r.tokens),
            *_timing_cells(r.wall_s, r.llm_s, r.env_s, r.memory_s, r.steps),
        )
    t.add_section()
    t.add_row(
        "all",
        "",
        f"{sum(r.success for r in results)}/{len(results)}",
        "",
        str(sum(r.steps for r in results)),
        str(sum(r.tokens for r in results)),
        *_timing_cells(
            sum(r.wall_s for r in results),
            sum(r.llm_s for r in results),
            sum(r.env_s for r in results),
            sum(r.memory_s for r in results),
            sum(r.steps for r in results),
        ),
    )
    out.print(t)


def _timing_cells(wall: float, llm: float, env: float, memory: float, steps: int) -> list[str]:
    """Wall, s/step, shares of LLM, env and memory, and the framework's own overhead
    (wall time outside all three) as a share and per step."""
    w = max(wall, 1e-9)
    n = max(steps, 1)
    over = max(0.0, wall - llm - env - memory)
    return [
        f"{wall:.1f}",
        f"{wall / n:.2f}",
        f"{100 * llm / w:.1f}",
        f"{100 * env / w:.1f}",
        f"{100 * memory / w:.1f}",
        f"{100 * over / w:.2f}",
        f"{1000 * over / n:.1f}",
    ]


@app.command("serve-llm", cls=_Command)
def serve_llm(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="0: a free port.")] = 0,
    config: ConfigOpt = None,
) -> None:
    """Start the embedded llama.cpp server (Gemma 3 270M, CPU) until Ctrl-C."""
    import signal
    import threading

    from agent.llm.embedded import EmbeddedServer

    try:
        settings = _settings(config)
        with EmbeddedServer(settings.llm, port=port or None) as server:
            err.print(f"[green]serving[/] {server.base_url}  (Ctrl-C to stop)")
            err.print(
                f"use it with: EVOLVENT_LLM__BASE_URL={server.base_url} evolvent run ...",
                soft_wrap=True,
            )
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, lambda *_: stop.set())
            while not stop.is_set() and server.is_running():
                stop.wait(0.5)
            if not server.is_running():
                _fail("the embedded server exited unexpectedly", code=1)
        err.print("stopped")
    except EvolventError as e:
        _fail(str(e))
    except KeyboardInterrupt:
        err.print("stopped")


@app.command(cls=_Command)
def envs() -> None:
    """List the environment ids `evolvent run --env` accepts."""
    from benchmarks.envs.registry import CORE_IDS, FAMILIES

    for e in CORE_IDS:
        out.print(e)
    for family in FAMILIES.values():
        if family.summary:
            out.print(
                f"# {family.prefix}: {family.summary}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        for name in family.names:
            out.print(f"{family.prefix}:{name}")


def main() -> None:
    # `kill -USR1 PID` prints every thread's stack to stderr: how to see where a run that
    # does not stop is waiting, without stopping it.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except EvolventError as e:  # one the command did not turn into its own message
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except OSError as e:
        if e.filename is None:  # not about a path the user gave: a bug, with its traceback
            raise
        err.print(f"[bold red]error:[/] {os_problem(e)}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
