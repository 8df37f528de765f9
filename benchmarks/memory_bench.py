"""Embedded Chroma memory at scale: add throughput, two-phase retrieval latency, RSS, recall.

    .venv/bin/python -m benchmarks.memory_bench --sizes 10000,100000

The fill is synthetic: random unit vectors (384-d, MiniLM's size) in clusters of ten similar
intents, so that a query has several candidates above delta and phase B has real work.
Latency "excluding embedding" feeds precomputed query vectors to
``EpisodicMemory.retrieve_vector``; "+emb" embeds unique, real-looking query strings with
MiniLM (no cache) and then retrieves, which is what ``EpisodicMemory.retrieve`` does.
"cores" is the process's CPU time during adds over their wall time: on a shared machine it
shows how much CPU the adds got. "recall" is the approximate index's recall@k1 against exact
search.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.scriptmain import run_script
from memory.chroma import ChromaBackend
from memory.embeddings import Embedder, SentenceTransformerEmbedder, Vectors
from memory.episodic import EpisodicMemory, EpisodicParams
from memory.records import MemoryRecord, Provenance

DIM = 384
CLUSTER = 10
COLLECTION = "bench__episode"
WARMUP = 20
RECALL_QUERIES = 200

_VERBS = ["cook", "take", "open", "find", "put", "slice", "examine", "unlock", "drop", "eat"]
_ADJS = ["red", "yellow", "wooden", "rusty", "small", "golden", "frozen", "old", "shiny", "blue"]
_THINGS = ["potato", "apple", "chest", "key", "carrot", "door", "knife", "coin", "book", "pepper"]
_PLACES = ["fridge", "kitchen", "stove", "cellar", "garden", "table", "oven", "shelf", "attic"]


@dataclass
class Result:
    n: int
    add_per_s: float
    add_cores: float
    rss_mb: float
    rss_fill_mb: float
    p50_ms: float
    p95_ms: float
    p50_embed_ms: float
    p95_embed_ms: float
    p95_embed_only_ms: float
    recall: float


_COLUMNS = [  # header, width, Result field, format
    ("records", 9, "n", ","),
    ("add/s", 7, "add_per_s", ",.0f"),
    ("cores", 5, "add_cores", ".2f"),
    ("RSS MB", 7, "rss_mb", ",.0f"),
    ("+fill", 6, "rss_fill_mb", ",.0f"),
    ("p50 ms", 7, "p50_ms", ".2f"),
    ("p95 ms", 7, "p95_ms", ".2f"),
    ("p50 +emb", 8, "p50_embed_ms", ".2f"),
    ("p95 +emb", 8, "p95_embed_ms", ".2f"),
    ("p95 emb", 7, "p95_embed_only_ms", ".2f"),
    ("recall", 6, "recall", ".3f"),
]


def _unit(x: Vectors) -> Vectors:
    out: Vectors = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def _near(rng: np.random.Generator, centers: Vectors, idx: npt.NDArray[np.int64]) -> Vectors:
    """Points near ``centers[idx]``: cosine ~0.86 to the center, ~0.74 to each other."""
    noise = _unit(rng.standard_normal((len(idx), DIM)).astype(np.float32))
    return _unit(centers[idx] + 0.6 * noise)


def _fill_vectors(n: int, start: int, size: int, centers: Vectors) -> Vectors:
    # Seeded per batch, so the exact-search check can rebuild the fill after RSS is read.
    rng = np.random.default_rng([n, start])
    return _near(rng, centers, np.arange(start, start + size) // CLUSTER)


def _records(start: int, n: int) -> list[MemoryRecord]:
    now = time.time()
    return [
        MemoryRecord(
            id=f"ep-{i:09d}",
            kind="episode",
            key=f"intent {i}: cook the carrot and put it on the table",
            text="open fridge; take carrot; slice carrot with knife; cook carrot on stove",
            provenance=Provenance(episode_id=f"thread-{i}", env_id="bench", created_at=now),
            meta={"reward": 1.0, "history": [{"experience": "...", "success": True}]},
        )
        for i in range(start, start + n)
    ]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _pct(samples: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, p))


def _sentences(rng: random.Random) -> Iterator[str]:
    """Unique task-like strings, so no cache can answer."""
    combos = list(itertools.product(_VERBS, _ADJS, _THINGS, _PLACES))
    rng.shuffle(combos)
    for v, a, t, p in combos:
        yield f"{v} the {a} {t} in the {p}"


class SizeRun:
    """One store of ``n`` records and its measurements."""

    def __init__(
        self, n: int, embedder: Embedder, root: Path, hnsw: dict[str, Any], queries: int
    ) -> None:
        self.n = n
        self.embedder = embedder
        self.path = root / f"mem-{n}"
        self.rss0 = _rss_mb()
        # Every read goes to Chroma: this measures its index, not the in-process copy that
        # answers a writer's reads of collections up to memory.replica.REPLICA_LIMIT records.
        self.backend = ChromaBackend.embedded(self.path, hnsw=hnsw, replica_limit=0)
        self.params = EpisodicParams(epsilon=0.0)
        self.batch = 5_000
        self.mem = EpisodicMemory(self.backend, embedder, COLLECTION, self.params)
        rng = np.random.default_rng(n)
        self.centers = _unit(rng.standard_normal((max(1, n // CLUSTER), DIM)).astype(np.float32))
        count = max(queries + WARMUP, RECALL_QUERIES)
        self.queries = _near(rng, self.centers, rng.integers(0, len(self.centers), count))

    def fill(self, batch: int) -> tuple[float, float]:
        """Records per second and cores used, timing only the backend's batched adds."""
        self.batch = batch
        wall = cpu = 0.0
        for start in range(0, self.n, batch):
            size = min(batch, self.n - start)
            recs = _records(start, size)
            vecs = _fill_vectors(self.n, start, size, self.centers)
            t, c = time.perf_counter(), time.process_time()
            self.backend.add(COLLECTION, recs, vecs)
            wall += time.perf_counter() - t
            cpu += time.process_time() - c
            if start // batch % 10 == 0:
                print(
                    f"  {self.n:,}: {start + size:,} added, {(start + size) / wall:,.0f}/s",
                    flush=True,
                )
        return self.n / wall, cpu / wall

    def latency(self, count: int) -> list[float]:
        lat = []
        for i, q in enumerate(self.queries[: count + WARMUP]):
            t = time.perf_counter()
            hits = self.mem.retrieve_vector(q)
            if i >= WARMUP:  # the first queries load the index and warm caches
                lat.append(time.perf_counter() - t)
        assert hits, "clustered queries should find candidates above delta"
        return lat

    def recall(self) -> float:
        """Mean recall@k1 of the index against exact search over the whole fill."""
        batch = self.batch  # the fill's batches: each one's vectors come from its own seed
        exact = np.full((RECALL_QUERIES, self.params.k1), -1, dtype=np.int64)
        best = np.full((RECALL_QUERIES, self.params.k1), -np.inf, dtype=np.float32)
        qs = self.queries[:RECALL_QUERIES]
        for start in range(0, self.n, batch):  # blockwise: no full matrix in memory
            size = min(batch, self.n - start)
            sims = qs @ _fill_vectors(self.n, start, size, self.centers).T
            ids = np.broadcast_to(np.arange(start, start + size), sims.shape)
            allsims = np.concatenate([best, sims], axis=1)
            allids = np.concatenate([exact, ids], axis=1)
            top = np.argsort(-allsims, axis=1)[:, : self.params.k1]
            best = np.take_along_axis(allsims, top, axis=1)
            exact = np.take_along_axis(allids, top, axis=1)
        found = 0
        for q, want in zip(qs, exact, strict=True):
            got = {int(r.id[3:]) for r, _ in self.backend.query(COLLECTION, q, self.params.k1)}
            found += len(got & set(want.tolist()))
        # Fewer records than k1: the exact answer has that many, not k1 (the rest is padding).
        return found / (len(qs) * min(self.params.k1, self.n))

    def latency_embedded(self, count: int) -> tuple[list[float], list[float]]:
        """Whole retrievals from query strings, and the embedding part of each."""
        words = _sentences(random.Random(self.n))
        # Real intents for the queries to find; their embedding is not timed.
        intents = [next(words) for _ in range(200)]
        vecs = self.embedder.embed(intents)
        self.backend.upsert(COLLECTION, _records(self.n, len(intents)), vecs)
        total, embed_only = [], []
        found = 0
        for i in range(count + WARMUP):
            t = time.perf_counter()
            vec = self.embedder.embed([next(words)])[0]
            t_emb = time.perf_counter()
            found += bool(self.mem.retrieve_vector(vec))
            if i >= WARMUP:
                total.append(time.perf_counter() - t)
                embed_only.append(t_emb - t)
        print(f"  {self.n:,}: {found} of {count + WARMUP} query strings found a memory", flush=True)
        return total, embed_only

    def close(self) -> None:
        self.backend.close()
        shutil.rmtree(self.path, ignore_errors=True)


def run_size(
    n: int, embedder: Embedder, queries: int, batch: int, root: Path, hnsw: dict[str, Any]
) -> Result:
    run = SizeRun(n, embedder, root, hnsw, queries)
    try:
        add_per_s, cores = run.fill(batch)
        rss = _rss_mb()
        lat = run.latency(queries)
        recall = run.recall()
        lat_e, emb = run.latency_embedded(queries // 2)
    finally:
        run.close()
    return Result(
        n=n,
        add_per_s=add_per_s,
        add_cores=cores,
        rss_mb=rss,
        rss_fill_mb=rss - run.rss0,
        p50_ms=_pct(lat, 50),
        p95_ms=_pct(lat, 95),
        p50_embed_ms=_pct(lat_e, 50),
        p95_embed_ms=_pct(lat_e, 95),
        p95_embed_only_ms=_pct(emb, 95),
        recall=recall,
    )


def table(results: list[Result]) -> str:
    head = " | ".join(f"{h:>{w}}" for h, w, _, _ in _COLUMNS)
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(" | ".join(f"{getattr(r, f):>{w}{fmt}}" for _, w, f, fmt in _COLUMNS))
    return "\n".join(rows)


def verdict(r: Result) -> str:
    misses = []
    if r.add_per_s < 1_000:
        misses.append("add < 1,000/s")
    if r.p95_ms > 15:
        misses.append("p95 > 15 ms")
    if r.p95_embed_ms > 30:
        misses.append("p95 +emb > 30 ms")
    return "meets all" if not misses else "misses: " + ", ".join(misses)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.memory_bench", description=__doc__)
    ap.add_argument("--sizes", action="append", help="record counts, e.g. 10000,100000")
    ap.add_argument("--queries", type=int, default=500, help="timed queries per size")
    ap.add_argument("--batch", type=int, default=5_000, help="records per add call")
    ap.add_argument("--ef-construction", type=int, default=None, help="HNSW build quality")
    ap.add_argument("--dir", type=Path, default=None, help="where stores are built (temp dir)")
    args = ap.parse_args(argv)
    try:
        sizes = [int(s) for arg in (args.sizes or ["10000,100000"]) for s in arg.split(",") if s]
    except ValueError:
        ap.error(f"bad --sizes {','.join(args.sizes)!r}: record counts, e.g. 10000,100000")
    if not sizes or min(sizes) < 1:
        ap.error("--sizes must name record counts of at least 1")
    if args.queries < 2 or args.batch < 1:
        ap.error("--queries must be at least 2 (half are timed again with embedding), --batch 1")
    if args.dir is not None and not args.dir.is_dir():
        ap.error(f"--dir {args.dir} is not a directory")
    if args.ef_construction is not None and args.ef_construction < 1:
        ap.error("--ef-construction must be at least 1")
    hnsw = {} if args.ef_construction is None else {"ef_construction": args.ef_construction}
    return run_script(lambda err: _bench(args, sizes, hnsw))


def _bench(args: argparse.Namespace, sizes: list[int], hnsw: dict[str, int]) -> int:
    root = Path(tempfile.mkdtemp(prefix="memory-bench-", dir=args.dir))
    load = os.getloadavg()[0]
    print(f"cpus={os.cpu_count()} load={load:.1f} python={sys.version.split()[0]} hnsw={hnsw}")
    embedder = SentenceTransformerEmbedder()  # no cache: every query string is embedded
    results: list[Result] = []
    try:
        for n in sizes:
            results.append(run_size(n, embedder, args.queries, args.batch, root, hnsw))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(table(results))
    for r in results:
        if r.n == 100_000:
            print(
                f"targets at 100k (add >= 1,000/s, p95 <= 15 ms, p95 +emb <= 30 ms): {verdict(r)}"
            )
    print(f"load after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
