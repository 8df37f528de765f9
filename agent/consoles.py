"""The consoles the commands print with: messages to stderr, tables and listings to stdout."""

from __future__ import annotations

import sys

from rich.console import Console


def stderr_console() -> Console:
    """Messages, progress and errors. Where stderr is not a terminal (a log file, a pipe,
    ``nohup``), a message stays one line however long: rich would wrap it at 80 columns."""
    return Console(stderr=True, soft_wrap=not sys.stderr.isatty())


def stdout_console() -> Console:
    """Tables and listings: the terminal's width, or 160 columns in a file or a pipe (rich
    would assume 80 and squeeze the tables)."""
    return Console(width=None if sys.stdout.isatty() else 160)
