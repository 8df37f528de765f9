"""Environment ids → environments.

An id is ``family:name``, optionally followed by ``:level=N`` for the TextWorld kinds that
take a difficulty level (``textworld:treasure_hunter:level=3``, 1–30;
``textworld:coin_collector:level=12``, 1–300). Without it, those kinds use level 5.
The ``env_id`` of the environment built is canonical: it names the level only when it is
not the default, so it round-trips through ``make_env``.

Families other than TextWorld and the toy are described by a ``Family`` in their own
module (``alfworld_env``, ``scienceworld_env``, ``miniwob_env``, ``webarena_env``); those
modules import their third-party packages only when an environment is built, so listing the
ids stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from agent.errors import ConfigError, UnknownEnvError
from benchmarks.envs.base import Env, Family
from benchmarks.envs.textworld_env import TextWorldEnv
from benchmarks.envs.toy import ToyEnv
from benchmarks.envs.tw_games import KINDS, check_kind, ensure_game


def _families() -> list[Family]:
    from benchmarks.envs import alfworld_env, miniwob_env, scienceworld_env, webarena_env

    modules = (alfworld_env, scienceworld_env, miniwob_env, webarena_env)
    return [module.FAMILY for module in modules]


FAMILIES: dict[str, Family] = {f.prefix: f for f in _families()}
"""The families beyond TextWorld and the toy, by id prefix."""

CORE_IDS: list[str] = [*(f"textworld:{kind}" for kind in KINDS), "toy:keys"]
ENV_IDS: list[str] = [
    *CORE_IDS,
    *(f"{f.prefix}:{name}" for f in FAMILIES.values() for name in f.names),
]
"""Every valid id (TextWorld levels aside)."""


def valid_ids_hint(env_id: str = "") -> str:
    """The valid ids in a few words: all ids of the family ``env_id`` names, else the core
    ids and one line per other family."""
    family = FAMILIES.get(env_id.partition(":")[0])
    if family is not None:
        ids = ", ".join(f"{family.prefix}:{n}" for n in family.names)
        return f"valid {family.prefix} ids: {ids}"
    others = "".join(
        f"; {f.prefix}:<{f.name_label}> ({len(f.names)} ids)" for f in FAMILIES.values()
    )
    return f"valid ids: {', '.join(CORE_IDS)}{others} (`evolvent envs` lists them all)"


def unknown_env(env_id: str) -> UnknownEnvError:
    return UnknownEnvError(f"unknown environment {env_id!r}; {valid_ids_hint(env_id)}")


def _parse(env_id: str) -> tuple[str, int | None]:
    """Split an id into its base id (one of ``ENV_IDS``) and an optional level."""
    base, _, option = env_id.partition(":level=")
    if base not in ENV_IDS:
        raise unknown_env(env_id)
    if ":level=" not in env_id:
        return base, None
    if not base.startswith("textworld:") or not option.isdigit():
        raise ConfigError(f"bad environment id {env_id!r}: expected e.g. {ENV_IDS[1]}:level=3")
    level = int(option)
    check_kind(base.removeprefix("textworld:"), level)
    return base, level


def check_env_id(env_id: str) -> str:
    """``env_id`` if it names an environment; ``UnknownEnvError``/``ConfigError`` otherwise."""
    _parse(env_id)
    return env_id


def is_env_id(text: str) -> bool:
    """Whether ``text`` looks like an environment id rather than a free-text task."""
    return text.split(":level=")[0] in ENV_IDS


def meant_as_env_id(text: str) -> bool:
    """Whether ``text`` reads as an id of a known family (``textworld:cookin``: one word,
    ``FAMILY:...``) rather than as a task, valid or not: such a typo is an error, not a
    task to play."""
    prefix, colon, rest = text.partition(":")
    known = {env_id.partition(":")[0] for env_id in ENV_IDS}
    return bool(colon) and bool(rest) and prefix in known and not any(c.isspace() for c in text)


def make_env(env_id: str, seed: int, games_dir: Path) -> Env:
    """Build the environment ``env_id`` for ``seed``; TextWorld games are generated into
    (or reused from) ``games_dir``. Raises ``UnknownEnvError`` listing the valid ids."""
    base, level = _parse(env_id)
    if base == "toy:keys":
        return ToyEnv(seed)
    prefix, _, name = base.partition(":")
    family = FAMILIES.get(prefix)
    if family is not None:
        if seed < 0:
            raise ConfigError(f"seed must be >= 0 (got {seed})")
        return family.make(name, seed, Path(games_dir))
    return TextWorldEnv(base.removeprefix("textworld:"), seed, Path(games_dir), level)


def pregenerate(env_id: str, seeds: Iterable[int], games_dir: Path) -> list[Path]:
    """Make sure the games of ``env_id`` for ``seeds`` exist, so that timed episodes do not
    pay for generation (~4 s a game). Returns the game files (none for families that need
    no files)."""
    base, level = _parse(env_id)
    prefix, _, name = base.partition(":")
    family = FAMILIES.get(prefix)
    if family is not None:
        if family.pregenerate is None:
            return []
        return family.pregenerate(name, list(seeds), Path(games_dir))
    if not base.startswith("textworld:"):
        return []
    kind = base.removeprefix("textworld:")
    return [ensure_game(kind, seed, Path(games_dir), level) for seed in seeds]
