"""``agent.freeze_heap``: the first episode of a process freezes the heap once (in a fresh
process each, since the test process may have played episodes already)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import gc, json, sys
from agent import Agent
from agent.config import load_settings
from agent.heap import settled
from agent.llm.scripted import ScriptedLLM
from benchmarks.envs.toy import ToyEnv
from memory import HashingEmbedder, MemoryStore

def pick(kind, prompt, options):
    return options[0] if isinstance(options, list) else "explore"

s = load_settings(None, home=sys.argv[1], **{"agent.freeze_heap": sys.argv[2] == "on"})
store = MemoryStore.in_memory(HashingEmbedder())
counts = [gc.get_freeze_count()]
with Agent(s, llm=ScriptedLLM(responder=pick), embedder=store.embedder, memory=store) as a:
    for i in range(2):
        a.run(ToyEnv(seed=i), thread_id=f"t{i}", max_steps=3)
        counts.append(gc.get_freeze_count())
print(json.dumps({"counts": counts, "settled": settled()}))
"""


def _child(home: Path, mode: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(home), mode],
        cwd=REPO, env=env, text=True, capture_output=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("mode", ["on", "off"])
def test_the_first_episode_freezes_the_heap_once(tmp_path: Path, mode: str) -> None:
    seen = _child(tmp_path, mode)
    before, first, second = seen["counts"]
    assert before == 0
    if mode == "on":
        assert seen["settled"] is True
        assert first > 10_000  # the loaded libraries, at least
        # Once per process: the second episode freezes nothing more (frozen objects freed
        # by reference counting leave the frozen count).
        assert second <= first
    else:
        assert seen["settled"] is False and first == second == 0
