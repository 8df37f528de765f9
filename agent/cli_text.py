"""Messages the memory and tools commands share."""

from __future__ import annotations

from collections.abc import Sequence


def none_deleted(namespace: str, missing: Sequence[str], listing: str) -> str:
    """A delete of several ids or names of which some are unknown: nothing was deleted;
    ``listing`` is the command that shows the known ones."""
    return (
        f"not found in namespace {namespace!r}: {', '.join(map(repr, missing))} "
        f"(nothing deleted; see `{listing}`)"
    )
