"""ScienceWorld's simulator: its task table, how a task loads, and one loaded task in its
own fresh JVM (``Game``), driven through the simulator's server object."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

from agent.errors import ConfigError, EvolventError
from benchmarks.envs.base import StepInfo
from benchmarks.envs.scienceworld_actions import Key, action_entries, prune_entries

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
"""The simulator's 0-1 score, times 100."""
EASY = "easy"
EASY_ELECTRICAL = "teleportAction,openDoors,openContainers,selfWateringFlowerPots"

_AMBIGUOUS = "Ambiguous request"
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


def start_jvm() -> Any:
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


def stop_jvm(package_env: Any) -> None:
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


class Game:
    """One loaded task in its own fresh JVM, driven through the simulator's server object."""

    def __init__(self, task: str, variation: int) -> None:
        self._env = start_jvm()
        try:
            self._env.load(task, variation, simplifications(task), generateGoldPath=False)
            self.server: Any = self._env.server
            self.first_look = str(self.server.step("look around"))
            self.task_description = str(self.server.getTaskDescription())
            self.types: dict[Key, tuple[int, ...]] = {}
        except BaseException:
            stop_jvm(self._env)
            raise

    @property
    def pid(self) -> int:
        """The Java process id."""
        return int(self._env._gateway.java_process.pid)

    def score(self) -> int:
        return round(100 * float(self.server.getScore()))

    def completed(self) -> bool:
        return bool(self.server.getCompleted())

    def info(self) -> StepInfo:
        """Score, won and lost now; a negative simulator score (a failed task) reads as lost
        with score 0."""
        score = self.score()
        return StepInfo(
            score=float(max(score, 0)),
            max_score=MAX_SCORE,
            won=self.completed() and score >= MAX_SCORE,
            lost=score < 0,
        )

    def ended(self, info: StepInfo) -> bool:
        """Whether the task is over (completed, or failed: ``info.lost``)."""
        return self.completed() or info.lost

    def admissible(self) -> dict[str, Key]:
        """The admissible actions now; ``types`` then holds their objects' type ids."""
        valid = json.loads(str(self.server.getValidActionObjectCombinationsJSON()))
        entries = action_entries(valid["validActions"])
        self.types = {key: types for key, (_, types) in entries.items()}
        return prune_entries(entries)

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
        stop_jvm(self._env)


def _container_uuid(obj: Any) -> int:
    container = obj.getContainer()
    return int(container.get().uuid()) if container.isDefined() else int(obj.uuid())
