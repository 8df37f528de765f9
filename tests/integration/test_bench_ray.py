"""``evolvent bench --executor ray``: a real local Ray instance, a real Chroma server, the
real LLM client against an instant endpoint over HTTP; the same episodes and the same learned
memory as the thread executor for the same schedule."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agent.config import Settings, load_settings
from benchmarks.harness import BenchSpec, default_backends, run_bench
from benchmarks.harness.endpoint import instant_endpoint

pytestmark = pytest.mark.integration

pytest.importorskip("ray", reason="Ray is an optional dependency (extra `envs`)")

FIELDS = (
    "seed",
    "success",
    "score",
    "steps",
    "actions",
    "tokens",
    "tools_used",
    "tools_written",
    "memory_stats",
    "stop_reason",
)


def outcome(records: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {
        (r["arm"], r["repeat"], r["phase"], r["index"]): {
            **{f: r[f] for f in FIELDS},
            "written": len(r["memories_written"]),
            "used": len(r["memories_used"]),
        }
        for r in records
    }


def bench(out: Path, base: Settings, executor: str) -> list[dict[str, Any]]:
    spec = BenchSpec.parse(
        env="toy:keys",
        train_seeds="0-5",
        test_seeds="100-101",
        arms="frozen,full",
        out=out,
        max_steps=5,
        concurrency=2,
        executor=executor,
    )
    quiet = Console(file=io.StringIO(), force_terminal=False)
    return run_bench(spec, base, backends=default_backends("hashing"), console=quiet)


def processes_using(path: Path) -> list[int]:
    """Pids whose command line names ``path`` (the Chroma server started for a run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(path) in cmd:
                found.append(int(entry.name))
    return found


def test_ray_executor_plays_the_thread_schedule(tmp_path: Path, evolvent_home: Path) -> None:
    import ray

    with instant_endpoint() as url:
        base = load_settings(
            None,
            home=str(evolvent_home),
            **{"llm.base_url": url, "agent.reflection_max_tokens": 0},
        )
        t0 = time.monotonic()
        threads = bench(tmp_path / "thread", base, "thread")
        t1 = time.monotonic()
        on_ray = bench(tmp_path / "ray", base, "ray")
        t2 = time.monotonic()
    print(f"thread executor {t1 - t0:.1f} s, ray executor {t2 - t1:.1f} s")
    # Every episode is recorded: 2 arms x (2 pre + 6 train + 2 post).
    assert len(on_ray) == len(threads) == 20
    lines = (tmp_path / "ray" / "episodes.jsonl").read_text().splitlines()
    assert len(lines) == 20
    assert outcome(on_ray) == outcome(threads)
    full = [r for r in on_ray if r["arm"] == "full" and r["phase"] == "train"]
    assert full[-1]["memory_stats"]["episode"] > 0 and full[-1]["memory_stats"]["value"] > 0
    assert any(r["memories_used"] for r in full[2:])  # later batches read what earlier learned
    # The memory lived on the Chroma server the run started (its data stays for a resume),
    # and everything the run started is stopped.
    chroma_dir = tmp_path / "ray" / "state" / "chroma"
    assert (chroma_dir / "db").is_dir()
    assert not processes_using(chroma_dir)
    assert not ray.is_initialized()
    assert not os.environ.get("RAY_ADDRESS")
