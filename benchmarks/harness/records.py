"""What a benchmark keeps on disk to resume: the episode log, played-but-unlearned episodes,
and the schedule it was started with.

* ``OUT/episodes.jsonl``: one line per episode whose learning has been applied.
* ``OUT/pending/KEY.json``: a ``PlayedEpisode`` of the current batch, written as soon as it is
  played and removed once it is learned from and logged. A resume learns from it instead of
  playing it again, so an episode is learned from exactly once, against the memory of its
  batch.
* ``OUT/bench.json``: what the recorded episodes are episodes of (environment, seeds, step
  limit) and the executor and concurrency (they decide what an arm learns): a resume must
  keep them all once an episode is recorded (before that, a rerun with other options starts
  afresh). Arms and repeats may be added. Also the tag that keeps this run's
  namespaces apart on a shared Chroma server.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from agent.deferred import PlayedEpisode
from benchmarks.harness.spec import BenchSpec, BenchSpecError, format_seeds

EPISODES_FILE = "episodes.jsonl"
RUN_FILE = "bench.json"
PENDING_DIR = "pending"
STATE_DIR = "state"
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
    env: str | None = None
    train_seeds: list[int] | None = None
    test_seeds: list[int] | None = None
    max_steps: int | None = None
    """The step limit the episodes were played with (None in files from before it was kept,
    with the environment and the seeds)."""

    @classmethod
    def settle(
        cls,
        out: Path,
        spec: BenchSpec,
        *,
        records: dict[EpisodeKey, dict[str, Any]],
        max_steps: int,
    ) -> RunInfo:
        """The run info of ``out``: checked against ``spec``, or written for a new run.

        ``records``: the episodes ``out`` already holds (a directory from before this file
        existed keeps untagged namespaces); ``max_steps``: this run's step limit. Raises
        ``BenchSpecError`` when ``spec`` would mix its episodes with another run's or change
        the schedule of a run half done. A run that recorded no episode (and left none
        pending) may be started again with other options: its ``state/``, which can then
        hold only half-played episodes of the old options, is removed.
        """
        path = out / RUN_FILE
        wanted = {
            "env": spec.env,
            "train_seeds": spec.train_seeds,
            "test_seeds": spec.test_seeds,
            "max_steps": max_steps,
        }
        if path.is_file():
            try:
                info = cls.model_validate_json(path.read_text(encoding="utf-8"))
            except ValidationError:
                raise BenchSpecError(f"{path} is damaged; fix or delete it") from None
            kept = info.model_dump(include=set(wanted))
            changed = kept != wanted or (info.executor, info.concurrency) != (
                spec.executor,
                spec.concurrency,
            )
            if changed and not records and not PendingEpisodes(out / PENDING_DIR).keys():
                # Nothing was recorded under those options (a run that failed before its
                # first episode ended): start afresh, without its half-played checkpoints.
                shutil.rmtree(out / STATE_DIR, ignore_errors=True)
                return cls._start(path, spec, wanted, tag=uuid.uuid4().hex[:6])
            if (info.executor, info.concurrency) != (spec.executor, spec.concurrency):
                raise BenchSpecError(
                    f"{out} was started with --executor {info.executor} --concurrency "
                    f"{info.concurrency}; resume with the same (the schedule decides what an "
                    "arm learns) or use another --out"
                )
            if any(v is None for v in kept.values()):  # kept since: check the records
                _check_records(out, spec, records)
                info = info.model_copy(update=wanted)
                _write_atomic(path, info.model_dump_json(indent=1))
            elif kept != wanted:
                raise BenchSpecError(_mismatch(out, kept, wanted))
            return info
        if not records and not (out / EPISODES_FILE).exists():
            _check_empty(out)
        _check_records(out, spec, records)
        return cls._start(path, spec, wanted, tag="" if records else uuid.uuid4().hex[:6])

    @classmethod
    def _start(cls, path: Path, spec: BenchSpec, wanted: dict[str, Any], *, tag: str) -> RunInfo:
        info = cls(executor=spec.executor, concurrency=spec.concurrency, tag=tag, **wanted)
        _write_atomic(path, info.model_dump_json(indent=1))
        return info


def _check_empty(out: Path) -> None:
    """A new run writes ``state/``, ``pending/`` and the report's files into ``out``: a
    folder that holds anything else is refused, so that nothing of the user's is overwritten
    or mixed with the run's."""
    names = sorted(p.name for p in out.iterdir())
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise BenchSpecError(
            f"--out {out} holds files that are not a benchmark's ({shown}); give a new or "
            "empty folder (a benchmark's report and state would be written among them)"
        )


def _options(values: dict[str, Any]) -> str:
    return (
        f"--env {values['env']} --train-seeds {format_seeds(values['train_seeds'])} "
        f"--test-seeds {format_seeds(values['test_seeds'])} --max-steps {values['max_steps']}"
    )


def _mismatch(out: Path, kept: dict[str, Any], wanted: dict[str, Any]) -> str:
    return (
        f"{out} was started with {_options(kept)}, not {_options(wanted)}; resume with the "
        "same options (arms and repeats may be added) or use another --out"
    )


def _check_records(out: Path, spec: BenchSpec, records: dict[EpisodeKey, dict[str, Any]]) -> None:
    """Episodes recorded before ``bench.json`` kept the environment and seeds: each must be
    the episode ``spec`` would play under its key."""
    for (arm, repeat, phase, index), record in sorted(records.items()):
        seeds = spec.seeds(repeat, phase)
        seed = seeds[index] if index < len(seeds) else None
        if record.get("env") != spec.env or record.get("seed") != seed:
            raise BenchSpecError(
                f"{out} holds episodes of another run: {key_name((arm, repeat, phase, index))} "
                f"played {record.get('env')} seed {record.get('seed')}, where this run plays "
                f"{spec.env} seed {seed}; resume with the same options or use another --out"
            )
