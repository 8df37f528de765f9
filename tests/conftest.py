"""Shared fixtures. Tests never reach a network or a model hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def evolvent_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Isolated state directory; settings from the environment don't leak in."""
    for k in list(os.environ):
        if k.startswith("EVOLVENT_"):
            monkeypatch.delenv(k)
    home = tmp_path / "home"
    monkeypatch.setenv("EVOLVENT_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def games_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated TextWorld games shared by the integration tests of one session."""
    return tmp_path_factory.mktemp("games")


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The file descriptors ``os.fsync`` is called on from now, in order (the calls still
    sync)."""
    synced: list[int] = []
    real_fsync = os.fsync

    def counted_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counted_fsync)
    return synced
