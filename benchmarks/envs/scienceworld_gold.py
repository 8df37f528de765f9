"""ScienceWorld's gold paths: the package's own gold path for a task variation, rewritten
into admissible actions that win when played as an episode (``normalize_gold``), and their
cache under ``games_dir/scienceworld`` (``ensure_gold_path``, ``gold_path``)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from agent.errors import EvolventError
from benchmarks.envs.scienceworld_actions import Key
from benchmarks.envs.scienceworld_sim import (
    Game,
    check_task,
    simplifications,
    start_jvm,
    stop_jvm,
)
from benchmarks.envs.textworld_env import sanitize_command

GOLD_DIR = "scienceworld"
_WAIT1 = "wait1"
_WAIT1_KEY: Key = (18, ())
_NORMALIZE_ROUNDS = 3


def generate_gold(task: str, variation: int) -> list[str]:
    """The package's gold path, generated in a fresh JVM (it varies between loads of one)."""
    check_task(task, variation)
    package_env = start_jvm()
    try:
        package_env.load(task, variation, simplifications(task), generateGoldPath=True)
        return [str(action) for action in package_env.get_gold_action_sequence()]
    finally:
        stop_jvm(package_env)


def normalize_gold(task: str, variation: int, raw: Sequence[str]) -> tuple[list[str], bool]:
    """Rewrite the package's gold path into admissible actions; also say whether it wins.

    The raw path speaks to the parser, not the valid list: aliases (``examine``), other
    referents (``thermometer in inventory``), no-ops in easy mode (``open door to kitchen``
    with doors open), ambiguous commands answered by ``0``. First it is replayed in a fresh
    JVM and each step becomes the action the simulator ran, or that action on the objects'
    containers when only that one is admissible (``terminal 1 on foil`` -> ``foil``). A
    step that ran nothing is dropped; one that ran an action with no admissible form (a
    refused no-op such as ``pick up`` of a held pot) becomes ``wait1``, which costs the same
    one tick. Then those actions are played in another fresh JVM exactly as an episode
    plays them, each under the wording the admissible list has at that moment: wordings
    (which of several apple seeds is "organism in ceramic cup") depend on the JVM's history,
    and this replay is the history an episode following the path will have. When that
    replay lacks one of the actions (its world drifted: bees pollinate at random), both
    passes run again on the path it played, up to three rounds; the best round is kept
    (winning first, then all admissible)."""
    commands = list(raw)
    rounds: list[tuple[bool, bool, list[str]]] = []
    for _ in range(_NORMALIZE_ROUNDS):
        path, won, admissible = _replay(task, variation, _ran_actions(task, variation, commands))
        rounds.append((won, admissible, path))
        if won and admissible:
            break
        commands = path  # the replay lacked an action (its world drifted): align on it
    won, _, path = max(rounds, key=lambda round_: round_[:2])  # the first of the best
    return path, won


_Ran = tuple[Key, str, tuple[int, ...]]
"""A gold action: simulator action, its admissible wording then, its objects' types."""


def _ran_actions(task: str, variation: int, raw: Sequence[str]) -> list[_Ran]:
    """The actions the raw gold path runs."""
    game = Game(task, variation)
    try:
        admissible = game.admissible()
        ran: list[_Ran] = []
        for command in raw:
            before = game.history_size()
            game.server.step(command)
            keys = game.executed(before)
            if keys is None:
                continue
            by_key = {key: text for text, key in admissible.items()}
            key = next((k for k in keys if k in by_key), None)
            if key is None:
                ran.append((_WAIT1_KEY, _WAIT1, ()))
            else:
                ran.append((key, by_key[key], game.types.get(key, ())))
            if game.completed() or game.score() < 0:
                break
            admissible = game.admissible()
        return ran
    finally:
        game.close()


def _replay(task: str, variation: int, actions: Sequence[_Ran]) -> tuple[list[str], bool, bool]:
    """Play ``actions`` as an episode does (a fresh ``Game``, each command sanitized and run
    under the admissible list of that moment): (wordings played, won, all were admissible).
    An action missing here may be on an object created during play (a fruit, a seed), whose
    id depends on the run: the admissible action of the same kind on objects of the same
    types whose wording shares most words with the original stands in for it."""
    game = Game(task, variation)
    try:
        admissible = game.admissible()
        path: list[str] = []
        won, all_admissible = False, True
        for key, wording, types in actions:
            by_key = {k: text for text, k in admissible.items()}
            if key not in by_key:
                alike = [k for k in by_key if k[0] == key[0] and types and game.types[k] == types]
                words = set(wording.split())
                key = max(alike, key=lambda k: len(words & set(by_key[k].split())), default=key)
            all_admissible = all_admissible and key in by_key
            path.append(by_key.get(key, wording))
            command = sanitize_command(path[-1])
            game.step(command, admissible.get(command))
            info = game.info()
            won = info.won
            if game.ended(info):
                break
            admissible = game.admissible()
        return path, won, all_admissible
    finally:
        game.close()


def gold_file(task: str, variation: int, games_dir: Path) -> Path:
    return Path(games_dir) / GOLD_DIR / f"{task}-{variation}.json"


def ensure_gold_path(task: str, variation: int, games_dir: Path) -> Path:
    """The cached gold path of (task, variation), computed on first use (three JVMs, two
    replays: ~5-20 s) and written atomically."""
    check_task(task, variation)
    path = gold_file(task, variation, games_dir)
    if _read_gold(path) is not None:
        return path
    raw = generate_gold(task, variation)
    gold, won = normalize_gold(task, variation, raw)
    payload = {
        "task": task,
        "variation": variation,
        "simplifications": simplifications(task),
        "gold_path": gold,
        "won": won,
        "raw_gold_path": raw,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(payload, out, indent=1)
        os.replace(tmp, path)  # concurrent writers: the last complete file wins
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read_gold(path: Path) -> list[str] | None:
    try:
        data = json.loads(path.read_text())
        return [str(action) for action in data["gold_path"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def gold_path(task: str, variation: int, games_dir: Path) -> list[str]:
    """The admissible gold path of (task, variation); see ``normalize_gold``."""
    gold = _read_gold(ensure_gold_path(task, variation, games_dir))
    if gold is None:
        raise EvolventError(f"unreadable gold path file {gold_file(task, variation, games_dir)}")
    return gold
