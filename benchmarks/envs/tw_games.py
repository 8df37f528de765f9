"""TextWorld game generation with ``tw-make`` and an on-disk cache.

A game is a pure function of (kind, options, seed), so each one is generated once into
``games_dir`` and reused. ``tw-make`` writes several files (``.z8`` story, ``.json`` metadata
the infos come from, ``.ni`` source), so every game gets its own folder, built under a
temporary name and renamed into place: the rename is atomic, so a concurrent process or a
Ctrl-C never leaves a half-written game behind, and the loser of a race just drops its copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.errors import ConfigError, EvolventError, UnknownEnvError
from benchmarks.envs.staging import publish_folder

GAME_FILE = "game.z8"
_GENERATION_TIMEOUT_S = 600


@dataclass(frozen=True)
class KindSpec:
    """How ``tw-make`` builds one kind of game."""

    challenge: str
    fixed_args: tuple[str, ...] = ()
    default_level: int | None = None
    max_level: int | None = None


KINDS: dict[str, KindSpec] = {
    "cooking": KindSpec(
        "tw-cooking",
        (
            *("--recipe", "1", "--take", "1", "--go", "1"),
            *("--open", "--cook", "--cut", "--split", "train"),
        ),
    ),
    # Level 5: five rooms without doors; walkthroughs of ~3 (treasure hunter) and 5 (coin
    # collector) commands. Higher levels add rooms, doors and distractors.
    "treasure_hunter": KindSpec("tw-treasure_hunter", default_level=5, max_level=30),
    "coin_collector": KindSpec("tw-coin_collector", default_level=5, max_level=300),
}


def check_kind(kind: str, level: int | None) -> int | None:
    """Validate ``kind`` and ``level``; return the level actually used (``None`` for cooking)."""
    spec = KINDS.get(kind)
    if spec is None:
        valid = ", ".join(KINDS)
        raise UnknownEnvError(f"unknown TextWorld game kind {kind!r}; valid kinds: {valid}")
    if spec.max_level is None:
        if level is not None:
            raise ConfigError(f"TextWorld {kind} games take no level (got level={level})")
        return None
    level = spec.default_level if level is None else level
    assert level is not None
    if not 1 <= level <= spec.max_level:
        raise ConfigError(f"TextWorld {kind} level must be in 1..{spec.max_level}, got {level}")
    return level


def _option_args(kind: str, level: int | None) -> list[str]:
    spec = KINDS[kind]
    args = list(spec.fixed_args)
    if level is not None:
        args += ["--level", str(level)]
    return args


def game_dir(kind: str, seed: int, games_dir: Path, level: int | None = None) -> Path:
    """The cache folder of one game (whether or not it exists yet)."""
    level = check_kind(kind, level)
    options = "-".join(arg.lstrip("-") for arg in _option_args(kind, level))
    return Path(games_dir) / f"{kind}-{options}-seed{seed}"


def _tw_make() -> Path:
    # The venv's console scripts sit next to its interpreter; PATH may not include them.
    beside = Path(sys.executable).parent / "tw-make"
    if beside.is_file():
        return beside
    found = shutil.which("tw-make")
    if found is None:
        raise EvolventError("tw-make not found: install textworld==1.7.0 in this environment")
    return Path(found)


def ensure_game(kind: str, seed: int, games_dir: Path, level: int | None = None) -> Path:
    """Return the ``.z8`` file of the game, generating it first if it is not cached."""
    if seed < 0:
        raise ConfigError(f"TextWorld seeds must be >= 0, got {seed}")
    level = check_kind(kind, level)
    final = game_dir(kind, seed, games_dir, level)
    return publish_folder(
        final, GAME_FILE, lambda staging: _run_tw_make(kind, seed, level, staging / GAME_FILE)
    )


def _run_tw_make(kind: str, seed: int, level: int | None, output: Path) -> None:
    command = [
        sys.executable,  # not the script's shebang, which breaks if the venv was moved
        str(_tw_make()),
        KINDS[kind].challenge,
        *_option_args(kind, level),
        "--seed",
        str(seed),
        "--output",
        str(output),
        "--silent",
        "-f",
    ]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=_GENERATION_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise EvolventError(
            f"tw-make timed out after {_GENERATION_TIMEOUT_S} s ({kind}, seed {seed})"
        ) from exc
    if proc.returncode != 0 or not output.is_file():
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit status {proc.returncode}"
        raise EvolventError(f"tw-make failed for {kind} seed {seed}: {last}")
