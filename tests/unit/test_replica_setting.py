"""``memory.replica_limit`` reaches the embedded store the agent opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_settings
from agent.stores import open_memory
from memory import HashingEmbedder
from memory.chroma import ChromaBackend


@pytest.mark.parametrize(("limit", "copied"), [(5000, True), (0, False)])
def test_replica_limit_decides_whether_reads_come_from_the_copy(
    tmp_path: Path, limit: int, copied: bool
) -> None:
    s = load_settings(None, home=str(tmp_path), **{"memory.replica_limit": limit})
    store = open_memory(s, HashingEmbedder())
    try:
        store.episodes.add("cook a meal", "read the cookbook", success=True, reward=1.0)
        assert [h.key for h in store.episodes.retrieve("cook a meal")] == ["cook a meal"]
        backend = store.backend
        assert isinstance(backend, ChromaBackend)
        assert backend._reads_copy is copied
        held = backend._state.replica.held(store.episodes.collection)
        assert held is (True if copied else None)
    finally:
        store.close()
