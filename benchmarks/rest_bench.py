"""The REST service under load: 50 concurrent runs, and reads while they play.

    .venv/bin/python -m benchmarks.rest_bench [--runs 50] [--workers 50] [--readers 8]

Starts ``python -m agent.server`` on a loopback port with the test-only instant scripted LLM
(``EVOLVENT_TEST_LLM=toy``: the agent's whole loop runs, the LLM answers at once), the
hashing embedder and a real embedded Chroma store and SQLite checkpoints in a temporary home.
It imports 500 memories, then fires ``--runs`` ``toy:keys`` runs at once. By default the
worker pool is as large as the burst (``--workers 50``), so all of them run concurrently;
with fewer workers pass ``--queue`` so that the rest wait in the queue instead of being
refused with 429. While runs are in flight, ``--readers`` tasks poll ``GET /v1/runs/{id}``
and as many search ``GET /v1/memories?query=...``; only requests sent before the last run
finished are counted. Throughput is runs completed over the time from the first submit
to the last finish (server-side timestamps).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from benchmarks.scriptmain import run_script

KEY = "bench-key"
_QUERIES = [
    "find the key and open the chest",
    "take the brass key",
    "open the locked chest",
    "go north to the kitchen",
    "explore the rooms",
]
_FINAL = {"succeeded", "failed", "cancelled"}
IDLE_REQUESTS = 100


@dataclass
class Samples:
    run_get_s: list[float] = field(default_factory=list)
    memory_query_s: list[float] = field(default_factory=list)
    submit_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pct(xs: list[float], q: float) -> float:
    """The q-quantile in milliseconds (nearest rank)."""
    if not xs:
        return float("nan")
    ordered = sorted(xs)
    return round(1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def _start_server(home: Path, port: int, workers: int, queue: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVOLVENT_")}
    env |= {
        "EVOLVENT_HOME": str(home),
        "EVOLVENT_API_KEYS": f"{KEY}:bench",
        "EVOLVENT_TEST_LLM": "toy",
        "EVOLVENT_SERVER__MAX_CONCURRENT_RUNS": str(workers),
        "EVOLVENT_SERVER__MAX_QUEUED_RUNS": str(queue),
    }
    cmd = [sys.executable, "-m", "agent.server", "--host", "127.0.0.1", "--port", str(port)]
    log = (home / "server.log").open("wb")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become healthy")


def _memories(n: int) -> bytes:
    rows = []
    for i in range(n):
        key = f"{random.choice(_QUERIES)} variant {i}"
        rows.append(
            {
                "id": f"bench-{i}",
                "kind": ("episode", "note", "experience")[i % 3],
                "key": key,
                "text": f"Actions: {key}",
                "q": random.uniform(-1, 1),
            }
        )
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


async def _timed(
    client: httpx.AsyncClient, samples: Samples, bucket: list[float], url: str, **kw: Any
) -> httpx.Response | None:
    t0 = time.perf_counter()
    try:
        resp = await client.get(url, **kw)
    except httpx.HTTPError as e:
        samples.errors[type(e).__name__] = samples.errors.get(type(e).__name__, 0) + 1
        return None
    bucket.append(time.perf_counter() - t0)
    if resp.status_code != 200:
        key = f"HTTP {resp.status_code}"
        samples.errors[key] = samples.errors.get(key, 0) + 1
    return resp


async def _load(url: str, runs: int, readers: int, deadline_s: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {KEY}"}
    limits = httpx.Limits(max_connections=runs + 2 * readers + 4)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as c:
        imported = await c.post(
            "/v1/memories/import",
            content=_memories(500),
            headers={"Content-Type": "application/x-ndjson"},
        )
        imported.raise_for_status()
        samples = Samples()
        done = asyncio.Event()
        ids: list[str] = []

        async def submit(seed: int) -> None:
            t0 = time.perf_counter()
            body = {"env": "toy:keys", "seed": seed, "max_steps": 12}
            resp = await c.post("/v1/runs", json=body)
            samples.submit_s.append(time.perf_counter() - t0)
            if resp.status_code != 202:
                raise SystemExit(f"POST /v1/runs answered {resp.status_code}: {resp.text}")
            ids.append(resp.json()["id"])

        async def poll_runs() -> None:
            while not done.is_set():
                if ids:
                    await _timed(c, samples, samples.run_get_s, f"/v1/runs/{random.choice(ids)}")
                else:
                    await asyncio.sleep(0.001)

        async def query_memory() -> None:
            while not done.is_set():
                params = {"query": random.choice(_QUERIES), "limit": 5}
                await _timed(c, samples, samples.memory_query_s, "/v1/memories", params=params)

        async def finished() -> int:
            """Runs in a final status, over every page (the server gives 200 at most)."""
            n, offset = 0, 0
            while True:
                page = await c.get("/v1/runs", params={"limit": 200, "offset": offset})
                items = page.json()["items"]
                n += sum(1 for r in items if r["status"] in _FINAL)
                if len(items) < 200:
                    return n
                offset += 200

        async def watch() -> None:
            end = time.monotonic() + deadline_s
            while time.monotonic() < end:
                await asyncio.sleep(0.05)
                if len(ids) >= runs and await finished() >= runs:
                    break
            done.set()

        wall0 = time.perf_counter()
        tasks = [asyncio.create_task(poll_runs()) for _ in range(readers)]
        tasks += [asyncio.create_task(query_memory()) for _ in range(readers)]
        watcher = asyncio.create_task(watch())
        try:
            await asyncio.gather(*(submit(s) for s in range(runs)))
            await watcher
            # Requests in flight when the last run finished still count: they ran under load.
            await asyncio.gather(*tasks)
        finally:  # Ctrl-C: the readers stop before the client closes under them
            done.set()
            for task in (*tasks, watcher):
                task.cancel()
            await asyncio.gather(*tasks, watcher, return_exceptions=True)
        wall = time.perf_counter() - wall0
        final = [(await c.get(f"/v1/runs/{i}")).json() for i in ids]
        # The same requests one at a time on the idle server, for comparison.
        idle = Samples()
        for _ in range(IDLE_REQUESTS):
            await _timed(c, idle, idle.run_get_s, f"/v1/runs/{random.choice(ids)}")
            params = {"query": random.choice(_QUERIES), "limit": 5}
            await _timed(c, idle, idle.memory_query_s, "/v1/memories", params=params)

    statuses: dict[str, int] = {}
    for r in final:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    started = min(r["created_at"] for r in final)
    finished = max(r["finished_at"] or started for r in final)
    completed = statuses.get("succeeded", 0)
    steps = [r["result"]["steps"] for r in final if r["result"]]
    return {
        "runs": runs,
        "unfinished": sum(1 for r in final if r["status"] not in _FINAL),
        "statuses": statuses,
        "won": sum(1 for r in final if r["result"] and r["result"]["success"]),
        "mean_steps": round(statistics.mean(steps), 2) if steps else 0,
        "span_s": round(finished - started, 3),
        "runs_per_s": round(completed / max(finished - started, 1e-9), 2),
        "client_wall_s": round(wall, 3),
        "submit_ms": {"p50": _pct(samples.submit_s, 0.5), "p95": _pct(samples.submit_s, 0.95)},
        "get_run_ms": {
            "n": len(samples.run_get_s),
            "p50": _pct(samples.run_get_s, 0.5),
            "p95": _pct(samples.run_get_s, 0.95),
        },
        "memory_query_ms": {
            "n": len(samples.memory_query_s),
            "p50": _pct(samples.memory_query_s, 0.5),
            "p95": _pct(samples.memory_query_s, 0.95),
        },
        "idle_get_run_ms": {
            "p50": _pct(idle.run_get_s, 0.5),
            "p95": _pct(idle.run_get_s, 0.95),
        },
        "idle_memory_query_ms": {
            "p50": _pct(idle.memory_query_s, 0.5),
            "p95": _pct(idle.memory_query_s, 0.95),
        },
        "errors": {**samples.errors, **idle.errors},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--runs", type=int, default=50, help="runs fired at once")
    ap.add_argument("--workers", type=int, default=50, help="server worker threads")
    ap.add_argument("--queue", type=int, default=0, help="server run queue length")
    ap.add_argument("--readers", type=int, default=8, help="concurrent GET loops per kind")
    ap.add_argument("--deadline", type=float, default=300, help="give up after this many s")
    args = ap.parse_args(argv)
    if min(args.runs, args.workers, args.readers) < 1 or args.queue < 0:
        ap.error("--runs, --workers and --readers must be at least 1, --queue at least 0")
    if not args.deadline > 0:
        ap.error("--deadline must be more than 0 seconds")
    if args.workers + args.queue < args.runs:
        ap.error("--workers + --queue must hold --runs, or some runs get 429")
    random.seed(0)
    return run_script(lambda err: _bench(args, err))


def _bench(args: argparse.Namespace, err: Console) -> int:
    home = Path(tempfile.mkdtemp(prefix="evolvent-rest-bench-"))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start_server(home, port, args.workers, args.queue)
    try:
        _wait_healthy(url, proc)
        result = asyncio.run(_load(url, args.runs, args.readers, args.deadline))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)
    result |= {"workers": args.workers, "queue": args.queue, "readers": args.readers}
    result["cpus"] = os.cpu_count()
    print(json.dumps(result, indent=2, sort_keys=True))
    if result["unfinished"]:
        err.print(
            f"[bold red]error:[/] gave up after --deadline {args.deadline:g} s with "
            f"{result['unfinished']} of {args.runs} runs unfinished: the figures above are "
            "not a finished load",
            highlight=False,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
