"""The embedded store's write lock: one writing process per directory, clear errors for others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from memory_sites import OPEN, REPO, free_port, run_python

from agent.errors import EvolventError, MemoryLocked
from memory import HashingEmbedder, MemoryStore

pytestmark = pytest.mark.integration

# -- the embedded store's write lock ------------------------------------------------------


def _try_open(path: Path, read_only: bool = False) -> dict[str, object]:
    code = (
        OPEN.format(loc={"path": str(path)}, ns="ns", ro=read_only, wb=1).replace(
            "st = MemoryStore", "try:\n  st = MemoryStore"
        )
        + """
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
else:
    out = {"ids": [r["id"] for r in st.export()]}
    try:
        st.notes.add("new", "write")
    except Exception as e:
        out["write_error"] = type(e).__name__
    print(json.dumps(out))
    st.close()
"""
    )
    res = run_python(code)
    assert res.returncode == 0, res.stderr
    out: dict[str, object] = json.loads(res.stdout)
    return out


def test_second_process_gets_memory_locked(tmp_path: Path) -> None:
    path = tmp_path / "memory"
    st = MemoryStore.open(path=path, namespace="ns", embedder=HashingEmbedder())
    mid = st.episodes.add("cook the potato", "slice it", success=True, reward=1.0)
    try:
        out = _try_open(path)
        assert out["error"] == "MemoryLocked"
        msg = str(out["message"])
        assert "\n" not in msg and str(path.resolve()) in msg and f"process {os.getpid()}" in msg
        assert "chroma run --path" in msg and "EVOLVENT_MEMORY__URL=http://127.0.0.1:8000" in msg
        # Read-only opens skip the lock, see the data and refuse writes.
        ro = _try_open(path, read_only=True)
        assert ro["ids"] == [mid] and ro["write_error"] == "EvolventError"
        # A second open in this process shares the lock instead of deadlocking on it.
        same = MemoryStore.open(path=path, namespace="other", embedder=HashingEmbedder())
        same.close()
        assert _try_open(path)["error"] == "MemoryLocked"
    finally:
        st.close()
    after = _try_open(path)
    assert after["ids"] == [mid] and "write_error" not in after


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    path = tmp_path / "memory"
    code = OPEN.format(loc={"path": str(path)}, ns="ns", ro=False, wb=1) + (
        'st.notes.add("k", "v")\nprint("ready", flush=True)\nimport time\ntime.sleep(600)\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(MemoryLocked) as err:
            MemoryStore.open(path=path, embedder=HashingEmbedder())
        assert isinstance(err.value, EvolventError) and err.value.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    st = MemoryStore.open(path=path, namespace="ns", embedder=HashingEmbedder())
    try:
        assert st.stats()["note"] == 1
    finally:
        st.close()


def test_open_needs_exactly_one_location(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        MemoryStore.open(embedder=HashingEmbedder())
    with pytest.raises(ValueError):
        MemoryStore.open(path=tmp_path, url="http://127.0.0.1:1", embedder=HashingEmbedder())
    with pytest.raises(EvolventError, match="cannot reach the Chroma server"):
        MemoryStore.open(url=f"http://127.0.0.1:{free_port()}", embedder=HashingEmbedder())
