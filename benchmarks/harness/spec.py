"""``BenchSpec``: what a benchmark run plays, parsed and validated from CLI strings."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from agent.errors import ConfigError
from benchmarks.envs.registry import is_env_id, unknown_env
from benchmarks.harness.arms import ARM_NAMES, check_arm

PHASES: tuple[str, ...] = ("pre", "train", "post")
"""Held-out seeds frozen before the stream, the training stream, held-out seeds after."""


class BenchSpecError(ConfigError):
    """A benchmark specification that cannot be run (bad seeds, arms, env)."""


def parse_seeds(text: str) -> list[int]:
    """``"0-39"``, ``"7"`` or a comma list of both (``"0-3,10,12-13"``) → seeds in order.

    Raises ``BenchSpecError`` naming the bad part; duplicates are an error too."""
    seeds: list[int] = []
    if not text.strip():
        raise BenchSpecError("empty seed range; expected e.g. 0-39 or 1,5,9-12")
    for part in text.split(","):
        part = part.strip()
        lo_s, dash, hi_s = part.partition("-")
        if not lo_s.strip().isdigit() or (dash and not hi_s.strip().isdigit()):
            raise BenchSpecError(
                f"bad seed range {part!r} in {text!r}; expected N or A-B with 0 <= A <= B"
            )
        lo = int(lo_s)
        hi = int(hi_s) if dash else lo
        if hi < lo:
            raise BenchSpecError(f"bad seed range {part!r}: the end is before the start")
        seeds.extend(range(lo, hi + 1))
    if len(set(seeds)) != len(seeds):
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        raise BenchSpecError(f"seed range {text!r} repeats seeds {dup[:5]}")
    return seeds


def format_seeds(seeds: list[int]) -> str:
    """The inverse of ``parse_seeds``: runs of consecutive seeds as ``A-B``."""
    parts: list[str] = []
    start = prev = None
    for seed in [*seeds, None]:
        if prev is not None and seed == prev + 1:
            prev = seed
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = seed
    return ",".join(parts)


class BenchSpec(BaseModel):
    """One benchmark: train on a stream of seeds, evaluate frozen on held-out seeds."""

    env: str
    """Environment id (``evolvent envs``), e.g. ``textworld:cooking`` or ``toy:keys``."""
    train_seeds: list[int] = Field(min_length=1)
    """The training stream (repeat 0 plays it in this order)."""
    test_seeds: list[int] = Field(min_length=1)
    """Held-out seeds played frozen before and after the stream; disjoint from training."""
    arms: list[str] = Field(default_factory=lambda: list(ARM_NAMES), min_length=1)
    repeats: int = Field(default=1, ge=1, le=100)
    out: Path
    """Output directory: ``episodes.jsonl``, per-arm state, the report."""
    max_steps: int | None = Field(default=None, ge=1)
    """Step limit per episode (unset: the settings' ``limits.max_steps``)."""
    concurrency: int = Field(default=1, ge=1, le=256)
    """Episodes played at once: the batch size of the batch-synchronous schedule (1 with the
    thread executor: the classic stream, every episode learning as it ends)."""
    executor: Literal["thread", "ray"] = "thread"
    """Where the episodes of a batch run: worker threads of this process, or Ray tasks."""
    ray_address: str | None = None
    """Ray cluster to join (``ray.init(address=...)``); unset: a local Ray instance."""

    @field_validator("env")
    @classmethod
    def _env_ok(cls, v: str) -> str:
        if not is_env_id(v):
            raise BenchSpecError(str(unknown_env(v)))
        return v

    @field_validator("arms")
    @classmethod
    def _arms_ok(cls, v: list[str]) -> list[str]:
        for a in v:
            try:
                check_arm(a)
            except ConfigError as e:
                raise BenchSpecError(str(e)) from None
        if len(set(v)) != len(v):
            raise BenchSpecError(f"arms listed twice: {', '.join(v)}")
        return v

    @model_validator(mode="after")
    def _disjoint(self) -> BenchSpec:
        shared = sorted(set(self.train_seeds) & set(self.test_seeds))
        if shared:
            raise BenchSpecError(
                f"test seeds must be held out, but {shared[:5]} are also training seeds"
            )
        if self.ray_address is not None and self.executor != "ray":
            raise BenchSpecError("--ray-address needs --executor ray")
        return self

    @property
    def batched(self) -> bool:
        """Batch-synchronous schedule with deferred learning (else: the classic stream)."""
        return self.executor == "ray" or self.concurrency > 1

    @property
    def schedule(self) -> str:
        """The schedule in words (it decides what an arm learns, so a resume must keep it)."""
        if not self.batched:
            return "stream (each episode learns as it ends)"
        return f"batches of {self.concurrency} (learning applied at batch ends, in task order)"

    @classmethod
    def parse(
        cls,
        *,
        env: str,
        train_seeds: str,
        test_seeds: str,
        arms: str,
        out: Path,
        repeats: int = 1,
        max_steps: int | None = None,
        concurrency: int = 1,
        executor: str = "thread",
        ray_address: str | None = None,
    ) -> BenchSpec:
        """From CLI strings (``--arms frozen,full``); raises ``BenchSpecError`` (one line)."""
        arm_list = [a.strip() for a in arms.split(",") if a.strip()]
        if executor not in ("thread", "ray"):
            raise BenchSpecError(f"unknown executor {executor!r}; valid: thread, ray")
        try:
            return cls(
                env=env,
                train_seeds=parse_seeds(train_seeds),
                test_seeds=parse_seeds(test_seeds),
                arms=arm_list,
                repeats=repeats,
                out=out,
                max_steps=max_steps,
                concurrency=concurrency,
                executor=executor,
                ray_address=ray_address or None,
            )
        except ValidationError as e:
            # Our validators raise BenchSpecError (not a ValueError: pydantic lets it through);
            # what is left are field constraints such as repeats >= 1.
            msgs = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
            raise BenchSpecError("invalid benchmark: " + "; ".join(msgs)) from None

    def seeds(self, repeat: int, phase: str) -> list[int]:
        """The seeds ``phase`` plays in ``repeat``, in order: the training stream, or the
        held-out seeds (``pre`` and ``post``)."""
        return self.stream(repeat) if phase == "train" else self.test_seeds

    def stream(self, repeat: int) -> list[int]:
        """Training order of ``repeat``: as given for repeat 0, a permutation seeded by the
        repeat otherwise. The order depends on nothing else, so every arm sees the same one."""
        order = list(self.train_seeds)
        if repeat:
            random.Random(repeat).shuffle(order)
        return order
