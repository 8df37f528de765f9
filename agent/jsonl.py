"""JSON-lines output shared by the export commands."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_jsonl(rows: Iterable[dict[str, Any]], out_file: Path | None) -> int:
    """One sorted-key JSON object per line to ``out_file`` (standard output when None).

    A file is written under a temporary name and renamed, so an interrupted export never
    leaves a half-written file under the real name. Returns how many rows were written.
    """
    n = 0
    if out_file is None:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
            n += 1
        return n
    tmp = out_file.with_name(out_file.name + ".part")
    with tmp.open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True) + "\n")
            n += 1
    tmp.replace(out_file)
    return n
