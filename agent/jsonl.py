"""JSON-lines output shared by the export commands."""

from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

from agent.errors import EvolventError


def write_jsonl(rows: Iterable[dict[str, Any]], out_file: Path | None) -> int:
    """One sorted-key JSON object per line to ``out_file`` (standard output when None).

    A file is written under a temporary name and renamed, so an interrupted export never
    leaves a half-written file under the real name (nor the temporary one). Returns how
    many rows were written; a file that cannot be written is an ``EvolventError``.
    """
    n = 0
    if out_file is None:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
            n += 1
        return n
    if out_file.is_dir():
        raise EvolventError(f"cannot write {out_file}: it is a directory")
    tmp = out_file.with_name(out_file.name + ".part")
    try:
        with tmp.open("w") as fh:
            for row in rows:
                fh.write(json.dumps(row, sort_keys=True) + "\n")
                n += 1
        tmp.replace(out_file)
    except OSError as e:
        _remove(tmp)
        raise EvolventError(f"cannot write {out_file}: {e.strerror or e}") from None
    except BaseException:
        _remove(tmp)  # interrupted: no half-written file left behind
        raise
    return n


def _remove(path: Path) -> None:
    with suppress(OSError):
        path.unlink(missing_ok=True)
