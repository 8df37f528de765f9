"""``agent.jsonl.write_jsonl``: whole files or none, and one-line errors."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.errors import EvolventError
from agent.jsonl import write_jsonl


def test_writes_sorted_keys_one_row_a_line(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    assert write_jsonl([{"b": 1, "a": 2}, {"c": [1]}], out) == 2
    assert out.read_text() == '{"a": 2, "b": 1}\n{"c": [1]}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


def test_unwritable_destinations_are_evolvent_errors(tmp_path: Path) -> None:
    with pytest.raises(EvolventError, match=r"cannot write .*: it is a directory"):
        write_jsonl([{"a": 1}], tmp_path)
    missing = tmp_path / "nope" / "rows.jsonl"
    with pytest.raises(EvolventError, match=r"cannot write .*rows\.jsonl: No such file"):
        write_jsonl([{"a": 1}], missing)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_export_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    out.write_text('{"old": true}\n')

    def rows() -> Iterator[dict[str, Any]]:
        yield {"a": 1}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(rows(), out)
    # The earlier export stays whole; no temporary file is left.
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]
    assert json.loads(out.read_text()) == {"old": True}


def test_links_pipes_and_devices_are_written_through_not_replaced(tmp_path: Path) -> None:
    """A rename replaced them by a plain file: a link's target kept its old rows, a reader
    of a FIFO waited forever, and as root ``--out /dev/full`` removed the device."""
    target = tmp_path / "target.jsonl"
    target.write_text("old\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert write_jsonl([{"a": 1}], link) == 1
    assert link.is_symlink() and target.read_text() == '{"a": 1}\n'
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    assert write_jsonl([{"b": 2}], fifo) == 1
    reader.join(timeout=10)
    assert got == ['{"b": 2}\n'] and stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link.jsonl", "target.jsonl"]
    with pytest.raises(EvolventError, match=r"cannot write /dev/full: No space left"):
        write_jsonl([{"c": 3}], Path("/dev/full"))
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)
