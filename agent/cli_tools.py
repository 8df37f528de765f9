"""``evolvent tools ...``: list, inspect, disable, enable, roll back, export, import and delete
learned tools; list the stored episodes macros are mined from.

The registry is ``<memory.path>/tools.sqlite`` (one file, rows per namespace). Read-only
commands never create it; an agent may be running on it at the same time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.table import Table

from agent.cli_text import none_deleted
from agent.consoles import stderr_console, stdout_console
from agent.errors import EvolventError
from agent.jsonl import parse_rows, read_jsonl, write_jsonl

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from memory.embeddings import Embedder
    from toolsmith.models import Tool, ToolStatus
    from toolsmith.registry import ToolRegistry

err = stderr_console()
out = stdout_console()

app = typer.Typer(
    help="Inspect and manage the tools the agent built.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

STATUSES = ("active", "disabled", "rejected")
NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", help="Tool namespace (default from settings).")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML or YAML settings file.")]
NameArg = Annotated[str, typer.Argument(help="Tool name (see `evolvent tools list`).")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


class _LazyEmbedder:
    """The real embedder, loaded only if a command changes a doc (rollback)."""

    def __init__(self) -> None:
        self._inner: Embedder | None = None

    def _get(self) -> Embedder:
        if self._inner is None:
            from memory.embeddings import default_embedder

            self._inner = default_embedder()
        return self._inner

    @property
    def dim(self) -> int:
        return self._get().dim

    @property
    def name(self) -> str:
        return self._get().name

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._get().embed(texts)


def registry_path(config: Path | None, namespace: str | None) -> tuple[Path, str]:
    """Where the tools of these settings live, and the namespace."""
    from agent.config import load_settings

    s = load_settings(config, **{"memory.namespace": namespace})
    return s.memory_path / "tools.sqlite", s.memory.namespace


@contextmanager
def _registry(
    namespace: str | None, config: Path | None, read_only: bool, *, create: bool = False
) -> Iterator[ToolRegistry | None]:
    """The registry, or None when no tool was ever written (unless ``create``: a command
    that adds tools makes the file)."""
    from toolsmith.sqlite_registry import SqliteToolRegistry

    try:
        path, ns = registry_path(config, namespace)
        if not create and not path.is_file():
            yield None
            return
        reg = SqliteToolRegistry(path, _LazyEmbedder(), ns, read_only=read_only)
    except EvolventError as e:
        raise _fail(str(e)) from None
    try:
        yield reg
    finally:
        reg.close()


def _need(reg: ToolRegistry | None, name: str) -> tuple[ToolRegistry, Tool]:
    """The registry and the tool ``name``, or exit 1 with one line."""
    if reg is None:
        raise _fail(f"no tool {name!r}: no tools have been made or imported yet", code=1)
    tool = reg.get(name)
    if tool is None:
        where = f"in namespace {reg.namespace!r}"
        raise _fail(f"no tool {name!r} {where} (see `evolvent tools list`)", code=1)
    return reg, tool


def _source(tool: Tool) -> str:
    p = tool.provenance
    eps = f" ({len(p.episode_ids)} episodes)" if p.episode_ids else ""
    return f"{p.source}{eps}"


@app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option("--status", help="active | disabled | rejected")
    ] = None,
    episode: Annotated[
        str | None,
        typer.Option("--episode", help="Only tools mined from this episode (its thread id)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List tools with their version, status, uses, success rate, utility and source."""
    if status is not None and status not in STATUSES:
        raise _fail(f"unknown status {status!r}; valid: {', '.join(STATUSES)}")
    if episode is not None and not episode.strip():
        raise _fail("--episode must not be blank")
    from toolsmith.transfer import tool_row

    with _registry(namespace, config, read_only=True) as reg:
        wanted = cast("ToolStatus | None", status)
        if reg is None:
            tools = []
        elif episode is not None:
            tools = reg.mined_from(episode, wanted)
        else:
            tools = reg.list_tools(wanted)
    if json_out:
        for t in tools:
            print(json.dumps(tool_row(t), sort_keys=True))
        return
    mined = f" mined from episode {episode}" if episode is not None else ""
    table = Table(title=f"tools{mined} ({len(tools)})")
    for col in ("name", "kind", "version", "status", "uses", "success", "utility", "source"):
        table.add_column(col)
    for t in sorted(tools, key=lambda t: (t.status != "active", -t.uses, t.name)):
        table.add_row(
            t.call if not t.slots else t.signature,
            t.kind,
            f"v{t.version}",
            t.status,
            str(t.uses),
            f"{t.success_rate:.0%}" if t.uses else "-",
            f"{t.utility:.2f}",
            _source(t),
        )
    out.print(table)


@app.command()
def episodes(
    env: Annotated[str | None, typer.Option("--env", help="Only this environment id.")] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per line, with the actions.")
    ] = False,
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the stored successful episodes macros are mined from and replayed on."""
    with _registry(namespace, config, read_only=True) as reg:
        stored = reg.trajectories(env) if reg is not None else []
    if json_out:
        for t in stored:
            print(json.dumps(t.model_dump(mode="json"), sort_keys=True))
        return
    table = Table(title=f"stored episodes ({len(stored)})")
    for col in ("episode", "env", "seed", "score", "actions", "by tools", "first actions"):
        table.add_column(col)
    for t in stored:
        table.add_row(
            t.episode_id,
            t.env_id,
            "-" if t.seed is None else str(t.seed),
            "-" if t.score is None else f"{t.score:g}",
            str(len(t.actions)),
            str(sum(t.from_tool)),
            "; ".join(t.actions[:3]) + ("; ..." if len(t.actions) > 3 else ""),
        )
    out.print(table)


@app.command("import-episodes")
def import_episodes(
    in_file: Annotated[Path, typer.Argument(help="JSONL file written by `tools episodes --json`.")],
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Read stored episodes back from JSON lines (`tools episodes --json`), oldest first.

    Every row is checked before anything is written; an episode the namespace holds is
    replaced; of each environment the newest 200 are kept, as when they are played."""
    from toolsmith.models import Trajectory

    try:
        rows = parse_rows(
            in_file,
            Trajectory,
            "a stored episode",
            lambda t: (t.env_id, t.episode_id),
            "episode {0.episode_id!r} of {0.env_id}",
        )
    except EvolventError as e:
        raise _fail(str(e)) from None
    with _registry(namespace, config, read_only=False, create=True) as reg:
        assert reg is not None  # made when missing
        with reg.atomic():
            for t in rows:
                reg.add_trajectory(t)
    err.print(f"imported {len(rows)} stored episodes into namespace {reg.namespace}")


@app.command()
def show(name: NameArg, namespace: NamespaceOpt = None, config: ConfigOpt = None) -> None:
    """Print one tool as JSON: body, doc, status and reason, usage, and every version."""
    from toolsmith.transfer import tool_row

    with _registry(namespace, config, read_only=True) as reg:
        found, tool = _need(reg, name)
        history = found.versions(name)[:-1]
    data = tool_row(tool)
    data["versions"] = [v.model_dump(mode="json") for v in history]
    print(json.dumps(data, indent=2))


@app.command()
def disable(
    name: NameArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept on the tool).")] = (
        "disabled by the user"
    ),
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Stop offering a tool to the agent."""
    with _registry(namespace, config, read_only=False) as reg:
        found, _ = _need(reg, name)
        found.set_status(name, "disabled", reason)
    err.print(f"disabled {name}")


@app.command()
def enable(name: NameArg, namespace: NamespaceOpt = None, config: ConfigOpt = None) -> None:
    """Offer a disabled tool again (a tool that failed validation stays rejected)."""
    with _registry(namespace, config, read_only=False) as reg:
        found, tool = _need(reg, name)
        if tool.status == "rejected":
            raise _fail(f"tool {name!r} failed validation and cannot be enabled: {tool.reason}", 1)
        found.set_status(name, "active", None)
    err.print(f"enabled {name}")


@app.command()
def rollback(
    name: NameArg,
    version: Annotated[int, typer.Argument(help="Version whose body and doc come back.")],
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Make an earlier version current again (as a new version; history is kept)."""
    with _registry(namespace, config, read_only=False) as reg:
        found, _ = _need(reg, name)
        try:
            tool = found.rollback(name, version)
        except KeyError:
            known = ", ".join(f"v{t.version}" for t in found.versions(name))
            raise _fail(f"tool {name!r} has no version {version}; it has {known}", 1) from None
    err.print(f"{name} is now v{tool.version} ({tool.change})")


@app.command("export")
def export_(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="JSONL file (default: standard output).")
    ] = None,
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write every tool of the namespace (with its earlier versions) as JSON lines."""
    from toolsmith.transfer import export_rows

    with _registry(namespace, config, read_only=True) as reg:
        rows = list(export_rows(reg)) if reg is not None else []
    try:
        n = write_jsonl(rows, out_file)
    except EvolventError as e:
        raise _fail(str(e)) from None
    if out_file is not None:
        err.print(f"exported {n} tools to {out_file}", highlight=False, soft_wrap=True)


@app.command("import")
def import_(
    in_file: Annotated[Path, typer.Argument(help="JSONL file written by `tools export`.")],
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Read tools from JSON lines with their versions, usage, status and provenance.

    Every row is checked before anything is written; a name the namespace already has is
    an error (delete it first, or import into another --namespace)."""
    from toolsmith.transfer import ToolNamesTaken, check_unique, import_rows, imported

    try:
        rows = [imported(row, f"{in_file}:{n}") for n, row in read_jsonl(in_file)]
        check_unique(rows, str(in_file))
    except EvolventError as e:
        raise _fail(str(e)) from None
    with _registry(namespace, config, read_only=False, create=True) as reg:
        assert reg is not None  # made when missing
        try:
            n = import_rows(reg, rows)
        except ToolNamesTaken as e:
            raise _fail(str(e), code=1) from None
    err.print(f"imported {n} tools into namespace {reg.namespace}")


@app.command()
def delete(
    names: Annotated[list[str], typer.Argument(help="Tool names (see `evolvent tools list`).")],
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete tools with their version history (all the names given, or none).

    Later successful episodes may mine a deleted macro again; `disable` keeps a tool from
    being offered."""
    with _registry(namespace, config, read_only=False) as reg:
        if reg is None:
            raise _fail(f"no tools yet, nothing to delete: {', '.join(names)}", code=1)
        with reg.atomic():  # all or nothing
            missing = [n for n in names if reg.get(n) is None]
            if missing:
                raise _fail(none_deleted(reg.namespace, missing, "evolvent tools list"), code=1)
            versions = sum(reg.delete(n) for n in dict.fromkeys(names))
    err.print(f"deleted {len(set(names))} tools ({versions} versions)")


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask.")] = False,
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete every tool of the namespace and the episodes macros are mined from (asks first)."""
    with _registry(namespace, config, read_only=False) as reg:
        total = len(reg.list_tools()) if reg is not None else 0
        stored = len(reg.trajectories()) if reg is not None else 0
        if reg is None or not (total or stored):
            err.print("no tools and no stored episodes in this namespace, nothing to delete")
            return
        if not yes and not typer.confirm(
            f"delete all {total} tools of namespace {reg.namespace!r} and the {stored} stored "
            "episodes they are mined from?",
            default=False,
        ):
            raise _fail("nothing deleted", code=1)
        tools, episodes = reg.reset()
    err.print(f"deleted {tools} tools and {episodes} stored episodes")
