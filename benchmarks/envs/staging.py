"""Writing a generated game folder so that readers never see it half-written."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def publish_folder(final: Path, marker: str, build: Callable[[Path], object]) -> Path:
    """``final / marker``, first building ``final`` if that file is missing.

    ``build`` fills an empty staging folder beside ``final``, which is then renamed into
    place in one step; when several processes build the same game at once, the first rename
    wins and the others' copies are dropped.
    """
    if (final / marker).is_file():
        return final / marker
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".tmp-{final.name}-") as tmp:
        staging = Path(tmp) / "game"
        staging.mkdir()
        build(staging)
        try:
            os.rename(staging, final)
        except OSError:
            # Another process renamed its copy first; theirs is complete, ours is dropped.
            if not (final / marker).is_file():
                raise
    return final / marker
