"""``evolvent memory ...``: list, inspect, search, export, import and delete learned memory.

Read-only commands open the store without the writer lock, so they work while an agent is
running on the same embedded store.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.table import Table

from agent.cli_text import none_deleted
from agent.consoles import stderr_console, stdout_console
from agent.errors import EvolventError
from agent.jsonl import parse_rows, write_jsonl

if TYPE_CHECKING:
    from memory.records import MemoryKind, MemoryRecord
    from memory.store import MemoryStore

err = stderr_console()
out = stdout_console()

app = typer.Typer(
    help="Inspect and manage learned memory.", no_args_is_help=True, rich_markup_mode="markdown"
)

KIND_CHOICES = ("episode", "note", "experience", "action", "value")
NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", help="Memory namespace (default from settings).")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML or YAML settings file.")]
KindOpt = Annotated[
    str | None, typer.Option("--kind", help="episode | note | experience | action | value")
]


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _store(namespace: str | None, config: Path | None, read_only: bool) -> Iterator[MemoryStore]:
    from agent.config import load_settings
    from agent.stores import open_memory

    try:
        s = load_settings(config, **{"memory.namespace": namespace})
        store = open_memory(s, read_only=read_only)
    except EvolventError as e:
        raise _fail(str(e)) from None
    try:
        yield store
    finally:
        store.close()


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KIND_CHOICES:
        raise _fail(f"unknown kind {kind!r}; valid: {', '.join(KIND_CHOICES)}")


def _records(
    store: MemoryStore, kind: str | None, episode: str | None = None
) -> Iterator[MemoryRecord]:
    from memory.store import KINDS

    kinds = [k for k in KINDS if kind is None or k == kind]
    if episode is not None:
        yield from store.taught_by(episode, kinds)
        return
    for k in kinds:
        yield from store.records(k)


def _clip(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


@app.command("list")
def list_(
    kind: KindOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to show.")] = 50,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Rows to skip first.")] = 0,
    episode: Annotated[
        str | None,
        typer.Option("--episode", help="Only what this episode taught (its thread id)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List memories, oldest first, with their value and where they came from."""
    _check_kind(kind)
    if episode is not None and not episode.strip():
        raise _fail("--episode must not be blank")
    with _store(namespace, config, read_only=True) as store:
        rows = list(itertools.islice(_records(store, kind, episode), offset, offset + limit))
    if json_out:
        for rec in rows:
            print(rec.model_dump_json())
        return
    shown = f"{len(rows)} shown" + (f" from row {offset + 1}" if offset and rows else "")
    taught = f" taught by episode {episode}" if episode is not None else ""
    t = Table(title=f"memories{taught} ({shown})")
    for col in ("id", "kind", "key", "text", "Q", "uses", "outcome", "episode"):
        t.add_column(col)
    for rec in rows:
        t.add_row(
            rec.id,
            rec.kind,
            _clip(rec.key, 40),
            _clip(rec.text, 50),
            f"{rec.q:+.2f}",
            str(rec.uses),
            rec.provenance.outcome,
            rec.provenance.episode_id or "",
        )
    out.print(t)


@app.command()
def show(
    memory_id: Annotated[str, typer.Argument(help="Memory id, e.g. ep-1a2b3c4d5e6f.")],
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print one memory with all its fields and provenance (JSON)."""
    with _store(namespace, config, read_only=True) as store:
        rec = store.get(memory_id)
    if rec is None:
        raise _fail(f"no memory with id {memory_id!r} in this namespace", code=1)
    print(rec.model_dump_json(indent=2))


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Task or situation text.")],
    kind: KindOpt = "episode",
    k: Annotated[int, typer.Option("-k", min=1, help="Results.")] = 5,
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Retrieve memories as the agent would (episodes: two-phase similarity + Q ranking;
    action and value records, which the agent does not retrieve by text: plain similarity)."""
    _check_kind(kind)
    kind = kind or "episode"
    if not query.strip():
        raise _fail("the query must not be blank")
    rows: list[tuple[str, str, str, str, str]] = []
    with _store(namespace, config, read_only=True) as store:
        if kind in ("action", "value"):
            for rec, sim in store.nearest(query, [cast("MemoryKind", kind)], k):
                rows.append((rec.id, f"{sim:.3f}", f"{rec.q:+.2f}", "-", _clip(rec.text, 70)))
        else:
            if kind == "note":
                hits = store.notes.retrieve(query, k=k)
            elif kind == "experience":
                hits = store.experiences.retrieve(query, k=k)
            else:
                hits = store.episodes.retrieve(query, k=k)
            for h in hits:
                score = f"{h.score:+.2f}"
                rows.append((h.id, f"{h.similarity:.3f}", f"{h.q:+.2f}", score, _clip(h.text, 70)))
    t = Table(title=f"{kind} memories for: {_clip(query, 60)}")
    for col in ("id", "similarity", "Q", "score", "text"):
        t.add_column(col)
    for row in rows:
        t.add_row(*row)
    out.print(t)


@app.command()
def stats(namespace: NamespaceOpt = None, config: ConfigOpt = None) -> None:
    """Counts per memory kind, with mean Q and uses."""
    with _store(namespace, config, read_only=True) as store:
        agg: dict[str, list[float]] = {k: [] for k in KIND_CHOICES}
        uses: dict[str, int] = dict.fromkeys(KIND_CHOICES, 0)
        for rec in _records(store, None):
            agg.setdefault(rec.kind, []).append(rec.q)
            uses[rec.kind] = uses.get(rec.kind, 0) + rec.uses
        ns = store.namespace
    t = Table(title=f"namespace {ns}")
    for col in ("kind", "count", "mean Q", "uses"):
        t.add_column(col)
    for kind, qs in agg.items():
        mean = f"{sum(qs) / len(qs):+.2f}" if qs else "-"
        t.add_row(kind, str(len(qs)), mean, str(uses.get(kind, 0)))
    out.print(t)


@app.command("export")
def export_(
    out_file: Annotated[
        Path | None, typer.Option("--out", help="JSONL file (default: standard output).")
    ] = None,
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write every memory of the namespace as JSON lines (import reads them back exactly)."""
    with _store(namespace, config, read_only=True) as store:
        try:
            n = write_jsonl(store.export(), out_file)
        except EvolventError as e:
            raise _fail(str(e)) from None
    if out_file is not None:
        err.print(f"exported {_memories(n)} to {out_file}", highlight=False, soft_wrap=True)


@app.command("import")
def import_(
    in_file: Annotated[Path, typer.Argument(help="JSONL file written by `memory export`.")],
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Read memories from JSON lines; ids, values and provenance are kept as they were.

    A memory with an id the namespace holds replaces it (the count is told); every row
    is checked first, and nothing is imported when one is invalid or an id repeats."""
    from memory.records import MemoryRecord

    try:  # every row checked before anything is written
        rows = parse_rows(in_file, MemoryRecord, "a memory", lambda r: r.id, "id {0.id!r}")
    except EvolventError as e:
        raise _fail(str(e)) from None
    with _store(namespace, config, read_only=False) as store:
        replaced = len(store.existing([r.id for r in rows]))
        n = store.import_records(rows)
    what = f"; {replaced} of them replaced the memories with their ids" if replaced else ""
    err.print(f"imported {_memories(n)} into namespace {store.namespace}{what}")


@app.command()
def delete(
    memory_ids: Annotated[
        list[str] | None, typer.Argument(help="Memory ids (or use --episode).")
    ] = None,
    episode: Annotated[
        str | None,
        typer.Option("--episode", help="Delete every memory learned from this episode id."),
    ] = None,
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete memories by id (all the ids given, or none), or everything one episode
    taught (--episode)."""
    if bool(memory_ids) == (episode is not None):
        raise _fail("give memory ids or --episode ID (one of the two)")
    with _store(namespace, config, read_only=False) as store:
        if episode is not None:
            n = store.delete_episode(episode)
            if not n:
                raise _fail(f"no memory learned from episode {episode!r}", code=1)
            err.print(f"deleted {_memories(n)} of episode {episode}")
            return
        ids = list(dict.fromkeys(memory_ids or []))
        held = store.existing(ids)
        missing = [m for m in ids if m not in held]
        if missing:
            raise _fail(none_deleted(store.namespace, missing, "evolvent memory list"), code=1)
        for m in ids:
            store.delete(m)
    err.print(f"deleted {_memories(len(ids))}")


@app.command()
def reset(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Don't ask.")] = False,
    namespace: NamespaceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Delete every memory of the namespace (asks first)."""
    with _store(namespace, config, read_only=False) as store:
        counts = store.stats()
        total = sum(counts.values())
        if not yes and not typer.confirm(
            f"delete all {_memories(total)} of namespace {store.namespace!r}?", default=False
        ):
            raise _fail("nothing deleted", code=1)
        store.reset()
    err.print(f"deleted {_memories(total)}")


def _memories(n: int) -> str:
    """``1 memory``, ``3 memories``."""
    return f"{n} {'memory' if n == 1 else 'memories'}"
