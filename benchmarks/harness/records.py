"""What a benchmark keeps on disk to resume: the episode log, played-but-unlearned episodes,
and the schedule it was started with.

* ``OUT/episodes.jsonl``: one line per episode whose learning has been applied.
* ``OUT/pending/KEY.json``: a ``PlayedEpisode`` of the current batch, written as soon as it is
  played and removed once it is learned from and logged. A resume learns from it instead of
  playing it again, so an episode is learned from exactly once, against the memory of its
  batch.
* ``OUT/bench.json``: executor and concurrency (they decide what an arm learns: a resume must
  keep them) and the tag that keeps this run's namespaces apart on a shared Chroma server.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.deferred import PlayedEpisode
from benchmarks.harness.spec import BenchSpec, BenchSpecError

EPISODES_FILE = "episodes.jsonl"
RUN_FILE = "bench.json"
PENDING_DIR = "pending"
EpisodeKey = tuple[str, int, str, int]
"""``(arm, repeat, phase, index)``: one episode of a benchmark."""


def key_of(record: dict[str, Any]) -> EpisodeKey:
    return (str(record["arm"]), int(record["repeat"]), str(record["phase"]), int(record["index"]))


def key_name(key: EpisodeKey) -> str:
    """``arm-rREPEAT-PHASE-INDEX``: the episode's thread id and file name."""
    arm, repeat, phase, index = key
    return f"{arm}-r{repeat}-{phase}-{index}"


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class EpisodeLog:
    """``episodes.jsonl``: one JSON object per finished episode, appended and flushed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> dict[EpisodeKey, dict[str, Any]]:
        """Episodes already recorded; a line cut short by a kill is ignored."""
        done: dict[EpisodeKey, dict[str, Any]] = {}
        if not self.path.is_file():
            return done
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                done[key_of(record)] = record
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
        return done

    def append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+", encoding="utf-8") as f:
                # A killed writer may have left a line without its newline: start afresh.
                f.seek(0, 2)
                if f.tell():
                    f.seek(f.tell() - 1)
                    if f.read(1) != "\n":
                        f.write("\n")
                f.write(line + "\n")
                f.flush()


class PendingEpisodes:
    """``OUT/pending/``: played episodes whose learning is not applied yet."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, key: EpisodeKey) -> Path:
        return self.dir / f"{key_name(key)}.json"

    def save(self, key: EpisodeKey, played: PlayedEpisode) -> None:
        """Written atomically: a kill leaves the old file or the new one, never half."""
        _write_atomic(self.path(key), played.model_dump_json())

    def load(self, key: EpisodeKey) -> PlayedEpisode | None:
        path = self.path(key)
        try:
            return PlayedEpisode.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValidationError):
            return None

    def drop(self, key: EpisodeKey) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.json")) if self.dir.is_dir() else []


class RunInfo(BaseModel):
    """``OUT/bench.json``: how a benchmark directory was started."""

    executor: str
    concurrency: int
    tag: str = ""
    """Suffix of this run's memory namespaces when memory is on a (shared) Chroma server."""

    @classmethod
    def settle(cls, out: Path, spec: BenchSpec, *, started: bool) -> RunInfo:
        """The run info of ``out``: checked against ``spec``, or written for a new run.

        ``started``: ``out`` already holds episodes (a directory from before this file
        existed keeps untagged namespaces). Raises ``BenchSpecError`` when ``spec`` would
        change the schedule of a run half done.
        """
        path = out / RUN_FILE
        if path.is_file():
            try:
                info = cls.model_validate_json(path.read_text(encoding="utf-8"))
            except ValidationError:
                raise BenchSpecError(f"{path} is damaged; fix or delete it") from None
            if (info.executor, info.concurrency) != (spec.executor, spec.concurrency):
                raise BenchSpecError(
                    f"{out} was started with --executor {info.executor} --concurrency "
                    f"{info.concurrency}; resume with the same (the schedule decides what an "
                    "arm learns) or use another --out"
                )
            return info
        info = cls(
            executor=spec.executor,
            concurrency=spec.concurrency,
            tag="" if started else uuid.uuid4().hex[:6],
        )
        _write_atomic(path, info.model_dump_json(indent=1))
        return info
