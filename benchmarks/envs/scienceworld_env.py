"""ScienceWorld's 30 science tasks (pip ``scienceworld==1.2.3``, a Scala simulator driven
through py4j; needs Java) behind the ``Env`` protocol.

Ids are ``scienceworld:<task>``; the seed is the task's variation index, from 0 to
``MAX_VARIATIONS[task] - 1`` (the package splits them into train: the first half, dev: the
next quarter, test: the last quarter). Tasks load with the ``easy`` simplifications
(teleporting, open doors and containers, self-watering flower pots, no electrical actions);
the electrical tasks keep their electrical actions. Reward is the score gained (the
simulator's 0-1 score times 100, ``max_score`` 100). A negative simulator score means the
task failed (e.g. the agent focused on the wrong thing): the episode ends, lost, with
score 0.

Determinism: the simulator draws from one JVM-wide random generator and iterates hash sets
of objects (ordered by identity hash codes), so what follows a load depends on everything
that JVM did before: bees and animals wander differently on a second load. Every
``reset()`` therefore starts a fresh JVM (about 1-3 s) whose identity hash codes do not
depend on machine load (see ``_JVM_OPTIONS``); an episode is then a function of (task,
variation, actions) alone.

The gold path (``info.extra["gold_path"]``, also ``"walkthrough"``) is computed by
``ensure_gold_path`` and cached under ``games_dir/scienceworld``; see ``normalize_gold``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, EvolventError
from benchmarks.envs.base import Env, Family, Observation, StepInfo, StepResult
from benchmarks.envs.textworld_env import sanitize_command

MAX_VARIATIONS: dict[str, int] = {
    "boil": 30,
    "change-the-state-of-matter-of": 30,
    "chemistry-mix": 32,
    "chemistry-mix-paint-secondary-color": 36,
    "chemistry-mix-paint-tertiary-color": 36,
    "find-animal": 300,
    "find-living-thing": 300,
    "find-non-living-thing": 300,
    "find-plant": 300,
    "freeze": 30,
    "grow-fruit": 126,
    "grow-plant": 126,
    "identify-life-stages-1": 14,
    "identify-life-stages-2": 10,
    "inclined-plane-determine-angle": 168,
    "inclined-plane-friction-named-surfaces": 1386,
    "inclined-plane-friction-unnamed-surfaces": 162,
    "lifespan-longest-lived": 125,
    "lifespan-longest-lived-then-shortest-lived": 125,
    "lifespan-shortest-lived": 125,
    "measure-melting-point-known-substance": 436,
    "measure-melting-point-unknown-substance": 300,
    "melt": 30,
    "mendelian-genetics-known-plant": 120,
    "mendelian-genetics-unknown-plant": 480,
    "power-component": 20,
    "power-component-renewable-vs-nonrenewable-energy": 20,
    "test-conductivity": 900,
    "test-conductivity-of-unknown-substances": 600,
    "use-thermometer": 540,
}
"""Variations per task, as the simulator reports them (``get_max_variations``)."""
TASKS: tuple[str, ...] = tuple(MAX_VARIATIONS)
MAX_SCORE = 100.0
EASY = "easy"
EASY_ELECTRICAL = "teleportAction,openDoors,openContainers,selfWateringFlowerPots"
GOLD_DIR = "scienceworld"

Key = tuple[int, tuple[int, ...]]
"""A simulator action: (template id, object ids), e.g. ``(9, (17259, 1899))`` = move X to Y."""

# Template ids of the simulator (ActionDefinitions) and object type ids (object_type_ids.tsv).
_LOOK_IN, _MOVE, _POUR, _RESET, _PICK_UP, _DUNK = 5, 9, 10, 12, 21, 26
_AGENT, _INVENTORY, _DOOR = 0, 1, 140
_LOCATIONS = frozenset({130, 131, 132, 133})
_WAIT1 = "wait1"
_WAIT1_KEY: Key = (18, ())
_NORMALIZE_ROUNDS = 3
_AMBIGUOUS = "Ambiguous request"
_REFUSED = frozenset({"reset task"})
_REFUSED_REPLY = "That command is not available here."
_ENDED_REPLY = "The task has ended."
_NO_STEP_LIMIT = 1_000_000  # the runner enforces step limits, not the simulator
# The simulator iterates hash sets of objects, ordered by identity hash codes, which a
# thread draws from a seed that depends on how many threads the JVM started before it: a
# load-dependent number (compiler and GC threads come on demand). Replays of one episode
# diverged about 1 time in 8 on busy cores. A constant identity hash code leaves insertion
# order alone to decide: no divergence in 14 concurrent replays, at no measurable cost.
_JVM_OPTIONS = "-XX:+UnlockExperimentalVMOptions -XX:hashCode=2"
_LAUNCH_LOCK = threading.Lock()
_IDENTIFIER = re.compile(r"ActionExprIdentifier\(identifier: (\w+)\)")


def simplifications(task: str) -> str:
    """The simplification string the task loads with."""
    electrical = task.startswith(("power-component", "test-conductivity"))
    return EASY_ELECTRICAL if electrical else EASY


def check_task(task: str, variation: int) -> None:
    """``ConfigError`` unless ``task`` exists and ``variation`` is one of its variations."""
    if task not in MAX_VARIATIONS:
        raise ConfigError(f"unknown ScienceWorld task {task!r}; tasks: {', '.join(TASKS)}")
    last = MAX_VARIATIONS[task] - 1
    if not 0 <= variation <= last:
        raise ConfigError(
            f"ScienceWorld task {task!r} has variations 0-{last} (the seed); got {variation}"
        )


def admissible_actions(valid: Sequence[Mapping[str, Any]]) -> dict[str, Key]:
    """The simulator's valid actions (``getValidActionObjectCombinationsJSON`` entries), pruned
    and sorted: admissible text -> simulator action.

    Dropped, because the same effect has another admissible form or no task needs them:

    * all but one wording of the same action (``go to X`` / ``teleport to X``: the first
      in sort order stays);
    * an object into itself (``pour jug into jug``), which the simulator refuses;
    * ``move X to inventory`` when ``pick up X`` is admissible (the same action);
    * ``pour X into Y`` when X is no open container (it would move X itself) and
      ``move X to Y`` is admissible;
    * moving, pouring or dunking into a room (a shortcut that skips carrying things);
    * actions on the agent itself (``focus on agent`` fails every task), two-object
      actions involving a door, and ``reset task``.

    Sizes stay large: ~100-300 in a corridor, ~700-1000 in the kitchen, up to ~3500 with
    many plants or electrical parts in view.
    """
    return _prune(_entries(valid))


def _entries(valid: Sequence[Mapping[str, Any]]) -> dict[Key, tuple[str, tuple[int, ...]]]:
    """Each simulator action once: its first wording in sort order, its objects' types."""
    entries: dict[Key, tuple[str, tuple[int, ...]]] = {}
    for item in valid:
        key: Key = (int(item["template_id"]), tuple(int(i) for i in item["obj_ids"]))
        text = str(item["action"])
        types = tuple(int(t) for t in item["type_ids"])
        if key not in entries or text < entries[key][0]:
            entries[key] = (text, types)
    return entries


def _prune(entries: Mapping[Key, tuple[str, tuple[int, ...]]]) -> dict[str, Key]:
    kept: dict[str, Key] = {}
    for key in sorted(entries):
        text, types = entries[key]
        if text not in kept and not _redundant(key, types, entries):
            kept[text] = key
    return dict(sorted(kept.items()))


def _redundant(key: Key, types: tuple[int, ...], entries: Mapping[Key, object]) -> bool:
    template, objs = key
    if template == _RESET or _AGENT in types:
        return True
    if len(objs) != 2:
        return False
    if objs[0] == objs[1] or _DOOR in types:
        return True
    if template in (_MOVE, _POUR, _DUNK) and types[1] in _LOCATIONS:
        return True
    if template == _MOVE and types[1] == _INVENTORY:
        return (_PICK_UP, objs[:1]) in entries
    if template == _POUR:
        return (_MOVE, objs) in entries and (_LOOK_IN, objs[:1]) not in entries
    return False


def _start_jvm() -> Any:
    """A fresh simulator (its own JVM); no task loaded."""
    if shutil.which("java") is None:
        raise EvolventError(
            "ScienceWorld needs Java: apt-get install openjdk-17-jre-headless "
            "(scripts/setup.sh installs it)"
        )
    from scienceworld import ScienceWorldEnv as PackageEnv

    try:
        with _java_options(_JVM_OPTIONS):
            return PackageEnv("", envStepLimit=_NO_STEP_LIMIT)
    except Exception as exc:
        raise EvolventError(f"ScienceWorld's JVM did not start: {exc}") from exc


@contextlib.contextmanager
def _java_options(options: str) -> Iterator[None]:
    """``options`` in ``JAVA_TOOL_OPTIONS`` while a JVM starts (the package takes none)."""
    with _LAUNCH_LOCK:
        before = os.environ.get("JAVA_TOOL_OPTIONS")
        os.environ["JAVA_TOOL_OPTIONS"] = f"{before} {options}" if before else options
        try:
            yield
        finally:
            if before is None:
                del os.environ["JAVA_TOOL_OPTIONS"]
            else:
                os.environ["JAVA_TOOL_OPTIONS"] = before


def _stop_jvm(package_env: Any) -> None:
    """Shut the gateway down and wait for the Java process to exit (kill it after 10 s)."""
    process = package_env._gateway.java_process
    with contextlib.suppress(Exception):  # a JVM that died cannot say goodbye: kill below
        package_env.close()
    package_env.close = lambda: None  # the package's __del__ closes again: once is enough
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Game:
    """One loaded task in its own fresh JVM, driven through the simulator's server object."""

    def __init__(self, task: str, variation: int) -> None:
        self._env = _start_jvm()
        try:
            self._env.load(task, variation, simplifications(task), generateGoldPath=False)
            self.server: Any = self._env.server
            self.first_look = str(self.server.step("look around"))
            self.task_description = str(self.server.getTaskDescription())
            self.types: dict[Key, tuple[int, ...]] = {}
        except BaseException:
            _stop_jvm(self._env)
            raise

    @property
    def pid(self) -> int:
        """The Java process id."""
        return int(self._env._gateway.java_process.pid)

    def score(self) -> int:
        return round(100 * float(self.server.getScore()))

    def completed(self) -> bool:
        return bool(self.server.getCompleted())

    def admissible(self) -> dict[str, Key]:
        """The admissible actions now; ``types`` then holds their objects' type ids."""
        valid = json.loads(str(self.server.getValidActionObjectCombinationsJSON()))
        entries = _entries(valid["validActions"])
        self.types = {key: types for key, (_, types) in entries.items()}
        return _prune(entries)

    def step(self, command: str, intended: Key | None) -> str:
        """Run ``command``; an ambiguous one is resolved to ``intended`` (else the first
        reading), so the simulator never waits for a numbered choice."""
        text = str(self.server.step(command))
        if text.startswith(_AMBIGUOUS):
            text = str(self.server.step(str(self._reading(intended))))
        return text

    def _reading(self, intended: Key | None) -> int:
        parser = self.server.agentInterface().get().inputParser()
        readings = [sorted(int(i) for i in row) for row in parser.getAmbiguousObjectIDs()]
        if intended is not None:
            wanted = sorted(intended[1])
            for index, ids in enumerate(readings):
                if ids == wanted:
                    return index
            for index, ids in enumerate(readings):
                if set(wanted) <= set(ids):
                    return index
        return 0

    def history_size(self) -> int:
        return int(self.server.agentInterface().get().agent().actionHistory().size())

    def executed(self, size_before: int) -> tuple[Key, Key] | None:
        """The action the last step ran, as (action, action on the objects' containers), or
        ``None`` when it ran none (unparsed input, an ambiguity prompt). Each step records a
        free look and inventory before the action itself."""
        history = self.server.agentInterface().get().agent().actionHistory()
        size = int(history.size())
        if size - size_before < 3:
            return None
        action = history.apply(size - 1)
        request = action.action()
        names = _IDENTIFIER.findall(str(request.triggers().head().toString()))
        assigned: dict[str, Any] = {}
        pairs = action.assignments().iterator()
        while pairs.hasNext():
            pair = pairs.next()
            assigned[str(pair._1)] = pair._2
        objects = [assigned[name] for name in names if name in assigned]
        template = int(request.uniqueActionID())
        own = tuple(int(obj.uuid()) for obj in objects)
        parents = tuple(_container_uuid(obj) for obj in objects)
        return (template, own), (template, parents)

    def close(self) -> None:
        _stop_jvm(self._env)


def _container_uuid(obj: Any) -> int:
    container = obj.getContainer()
    return int(container.get().uuid()) if container.isDefined() else int(obj.uuid())


def generate_gold(task: str, variation: int) -> list[str]:
    """The package's gold path, generated in a fresh JVM (it varies between loads of one)."""
    check_task(task, variation)
    package_env = _start_jvm()
    try:
        package_env.load(task, variation, simplifications(task), generateGoldPath=True)
        return [str(action) for action in package_env.get_gold_action_sequence()]
    finally:
        _stop_jvm(package_env)


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
    game = _Game(task, variation)
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
    """Play ``actions`` as an episode: (wordings played, won, all were admissible). An
    action missing here may be on an object created during play (a fruit, a seed), whose
    id depends on the run: the admissible action of the same kind on objects of the same
    types whose wording shares most words with the original stands in for it."""
    env = SciWorldEnv(task, variation, Path())
    try:
        game = env._begin_game()
        path: list[str] = []
        won, admissible = False, True
        for key, wording, types in actions:
            by_key = {k: text for text, k in env._admissible.items()}
            if key not in by_key:
                alike = [k for k in by_key if k[0] == key[0] and types and game.types[k] == types]
                words = set(wording.split())
                key = max(alike, key=lambda k: len(words & set(by_key[k].split())), default=key)
            admissible = admissible and key in by_key
            path.append(by_key.get(key, wording))
            result = env.step(path[-1])
            won = result.info.won
            if result.done:
                break
        return path, won, admissible
    finally:
        env.close()


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


class SciWorldEnv:
    """One ScienceWorld task variation. Each ``reset()`` starts a fresh JVM; ``close()``
    stops it. After the task is completed or failed, further steps are answered without
    reaching the simulator, with ``done=True`` and no admissible actions."""

    def __init__(self, task: str, variation: int, games_dir: Path) -> None:
        check_task(task, variation)
        self._task = task
        self._variation = variation
        self._games_dir = Path(games_dir)
        self._game: _Game | None = None
        self._admissible: dict[str, Key] = {}
        self._info = StepInfo(max_score=MAX_SCORE)
        self._done = False

    @property
    def env_id(self) -> str:
        return f"scienceworld:{self._task}"

    @property
    def seed(self) -> int:
        return self._variation

    @property
    def task(self) -> str:
        return self._task

    @property
    def java_pid(self) -> int | None:
        """The running JVM's process id (``None`` before ``reset()`` and after ``close()``)."""
        return self._game.pid if self._game is not None else None

    def reset(self) -> Observation:
        gold = gold_path(self._task, self._variation, self._games_dir)
        game = self._begin_game()
        extra: dict[str, object] = {
            "gold_path": gold,
            "walkthrough": gold,
            "variation": self._variation,
            "simplifications": simplifications(self._task),
        }
        return Observation(
            task=game.task_description,
            text=game.first_look.strip(),
            admissible=list(self._admissible),
            info=self._info.model_copy(update={"extra": extra}),
        )

    def _begin_game(self) -> _Game:
        """Start the episode in a fresh JVM (the gold path's replay starts here too)."""
        self.close()
        self._game = game = _Game(self._task, self._variation)
        self._done = False
        self._info = self._step_info(game)
        self._admissible = game.admissible()
        return game

    def step(self, action: str) -> StepResult:
        if self._game is None:
            raise RuntimeError("SciWorldEnv.step() called before reset()")
        if self._done:
            return self._reply(_ENDED_REPLY)
        command = sanitize_command(action)
        if command.lower() in _REFUSED:
            return self._reply(_REFUSED_REPLY)
        text = self._game.step(command, self._admissible.get(command))
        before = self._info.score
        self._info = self._step_info(self._game)
        self._done = self._game.completed() or self._info.lost
        self._admissible = {} if self._done else self._game.admissible()
        return StepResult(
            text=text.strip(),
            admissible=list(self._admissible),
            reward=self._info.score - before,
            done=self._done,
            info=self._info,
        )

    def _reply(self, text: str) -> StepResult:
        """An answer that leaves the simulator untouched (ended task, refused command)."""
        return StepResult(
            text=text,
            admissible=list(self._admissible),
            reward=0.0,
            done=self._done,
            info=self._info.model_copy(),
        )

    @staticmethod
    def _step_info(game: _Game) -> StepInfo:
        score = game.score()
        return StepInfo(
            score=float(max(score, 0)),
            max_score=MAX_SCORE,
            won=game.completed() and score >= MAX_SCORE,
            lost=score < 0,
        )

    def close(self) -> None:
        if self._game is not None:
            game, self._game = self._game, None
            game.close()


def make(name: str, seed: int, games_dir: Path) -> Env:
    return SciWorldEnv(name, seed, games_dir)


def pregenerate(name: str, seeds: list[int], games_dir: Path) -> list[Path]:
    """Compute (or find) the gold paths of ``seeds``, so timed episodes do not pay for it."""
    return [ensure_gold_path(name, seed, games_dir) for seed in seeds]


FAMILY = Family(
    prefix="scienceworld",
    names=TASKS,
    make=make,
    name_label="task",
    summary=(
        "ScienceWorld science tasks, easy mode, seed = variation index "
        "(pip scienceworld==1.2.3; needs Java: openjdk-17-jre-headless)"
    ),
    pregenerate=pregenerate,
)
