"""JSON lines shared by the export and import commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent.errors import EvolventError, validation_message

M = TypeVar("M", bound=BaseModel)


def write_jsonl(rows: Iterable[dict[str, Any]], out_file: Path | None) -> int:
    """One sorted-key JSON object per line to ``out_file`` (standard output when None).

    A file is written under a temporary name and renamed, so an interrupted export never
    leaves a half-written file under the real name (nor the temporary one); through a
    symbolic link, the file it points to is. A pipe or a device (``/dev/stdout``, a FIFO)
    is written to as it is, never replaced. Returns how many rows were written; a file that
    cannot be written is an ``EvolventError``.
    """
    n = 0
    if out_file is None:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
            n += 1
        return n
    if out_file.is_dir():
        raise EvolventError(f"cannot write {out_file}: it is a directory")
    if out_file.exists() and not out_file.is_file():
        return _write_through(rows, out_file)
    target = out_file.resolve() if out_file.is_symlink() else out_file
    tmp = target.with_name(target.name + ".part")
    try:
        with tmp.open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row, sort_keys=True) + "\n")
                n += 1
        tmp.replace(target)
    except OSError as e:
        _remove(tmp)
        raise EvolventError(f"cannot write {out_file}: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)  # interrupted: no half-written file left behind
        raise
    return n


def _write_through(rows: Iterable[dict[str, Any]], out_file: Path) -> int:
    """Rows written into a pipe or a device, which a rename would replace by a file."""
    n = 0
    try:
        with out_file.open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row, sort_keys=True) + "\n")
                n += 1
    except OSError as e:
        raise EvolventError(f"cannot write {out_file}: {e.strerror or e}") from None
    return n


def _remove(path: Path) -> None:
    with suppress(OSError):
        path.unlink(missing_ok=True)


def read_jsonl(in_file: Path) -> list[tuple[int, Any]]:
    """The JSON value of every non-blank line of ``in_file``, with its line number.

    A missing or unreadable file, one that is not UTF-8, or a line that is not JSON is an
    ``EvolventError`` naming the file (and the line): an import then writes nothing.
    """
    if not in_file.is_file():
        raise EvolventError(f"no such file: {in_file}")
    rows: list[tuple[int, Any]] = []
    try:
        with in_file.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((lineno, json.loads(line)))
                except json.JSONDecodeError as e:
                    raise EvolventError(
                        f"{in_file}:{lineno}: not JSON ({e.msg}); nothing imported"
                    ) from None
    except UnicodeDecodeError:
        raise EvolventError(f"{in_file}: not UTF-8 text; nothing imported") from None
    except OSError as e:
        raise EvolventError(f"cannot read {in_file}: {e.strerror or e}") from None
    return rows


def parse_row(model: type[M], row: Any, where: str, what: str) -> M:
    """``row`` as a ``model``, or an ``EvolventError`` naming ``where`` (file:line) and the
    first field that is wrong."""
    try:
        return model.model_validate(row)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "the row"
        raise EvolventError(
            f"{where}: not {what} ({field}: {validation_message(first)}); nothing imported"
        ) from None


def parse_rows(
    in_file: Path, model: type[M], what: str, key: Callable[[M], Hashable], named: str
) -> list[M]:
    """Every row of ``in_file`` as a ``model`` (``parse_row``), each ``key`` once: a row
    whose key an earlier row has is an ``EvolventError`` naming both lines (``named``: how
    the message names the key, formatted with the row, e.g. ``"id {0.id!r}"``)."""
    rows: list[M] = []
    first: dict[Hashable, int] = {}
    for lineno, raw in read_jsonl(in_file):
        row = parse_row(model, raw, f"{in_file}:{lineno}", what)
        k = key(row)
        if k in first:
            raise EvolventError(
                f"{in_file}:{lineno}: {named.format(row)} is on line {first[k]} too; "
                "nothing imported"
            )
        first[k] = lineno
        rows.append(row)
    return rows
