"""Environment ids → environments.

An id is ``family:name``, optionally followed by ``:level=N`` for the TextWorld kinds that
take a difficulty level (``textworld:treasure_hunter:level=3``, 1–30;
``textworld:coin_collector:level=12``, 1–300). Without it, those kinds use level 5.
The ``env_id`` of the environment built is canonical: it names the level only when it is
not the default, so it round-trips through ``make_env``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agent.errors import ConfigError, UnknownEnvError
from benchmarks.envs.base import Env
from benchmarks.envs.textworld_env import TextWorldEnv
from benchmarks.envs.toy import ToyEnv
from benchmarks.envs.tw_games import KINDS, check_kind, ensure_game

ENV_IDS: list[str] = [*(f"textworld:{kind}" for kind in KINDS), "toy:keys"]


def _parse(env_id: str) -> tuple[str, int | None]:
    """Split an id into its base id (one of ``ENV_IDS``) and an optional level."""
    base, _, option = env_id.partition(":level=")
    if base not in ENV_IDS:
        raise UnknownEnvError(f"unknown environment {env_id!r}; valid ids: {', '.join(ENV_IDS)}")
    if ":level=" not in env_id:
        return base, None
    if not base.startswith("textworld:") or not option.isdigit():
        raise ConfigError(f"bad environment id {env_id!r}: expected e.g. {ENV_IDS[1]}:level=3")
    level = int(option)
    check_kind(base.removeprefix("textworld:"), level)
    return base, level


def make_env(env_id: str, seed: int, games_dir: Path) -> Env:
    """Build the environment ``env_id`` for ``seed``; TextWorld games are generated into
    (or reused from) ``games_dir``. Raises ``UnknownEnvError`` listing the valid ids."""
    base, level = _parse(env_id)
    if base == "toy:keys":
        return ToyEnv(seed)
    return TextWorldEnv(base.removeprefix("textworld:"), seed, Path(games_dir), level)


def pregenerate(env_id: str, seeds: Iterable[int], games_dir: Path) -> list[Path]:
    """Make sure the games of ``env_id`` for ``seeds`` exist, so that timed episodes do not
    pay for generation (~4 s a game). Returns the game files (none for families that need
    no files)."""
    base, level = _parse(env_id)
    if not base.startswith("textworld:"):
        return []
    kind = base.removeprefix("textworld:")
    return [ensure_game(kind, seed, Path(games_dir), level) for seed in seeds]
