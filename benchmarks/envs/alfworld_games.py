"""The project's own ALFWorld games: small scenes written as ALFWorld game files.

ALFWorld's official games cannot be downloaded on every machine, so this module writes
games of the same format for each of the six task types: a PDDL problem over ALFWorld's
own domain (``alfred.pddl``, the problem written by ``alfworld_pddl``), wrapped with
ALFWorld's grammar (``alfred.twl2``) in a ``game.tw-pddl`` file, beside the
``traj_data.json`` that ALFWorld's tools read (task type, ``pddl_params``, scene, annotated
task description). The real engine (TextWorld's PDDL environment with ALFWorld's wrappers)
plays them exactly like the official games.

A game is a pure function of (task type, seed): the seed picks the room, the target
object and receptacle, where everything starts, which receptacles exist and the
distractors (``alfworld_scenes``). Each game carries a walkthrough, computed from the
scene, which the tests play on the real engine. Games are written once into their own
folder under ``games_dir/alfworld`` (staged under a temporary name, then renamed: the
rename is atomic).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pydantic import BaseModel, Field

from agent.errors import ConfigError, EvolventError
from benchmarks.envs.alfworld_pddl import problem_pddl
from benchmarks.envs.alfworld_scenes import PddlParams, Scene, build_scene, check_task_type
from benchmarks.envs.staging import publish_folder

GAME_FILE = "game.tw-pddl"
TRAJ_FILE = "traj_data.json"
PROBLEM_FILE = "initial_state.pddl"
GAMES_VERSION = 1
"""Bumped whenever the content of generated games changes, so stale caches are not reused."""


# --- File models -------------------------------------------------------------------------


class SceneInfo(BaseModel):
    """Where the task happens (ALFRED's floor plan numbering)."""

    floor_plan: str
    scene_num: int
    random_seed: int
    """The seed this game was generated from."""


class Annotation(BaseModel):
    """One language annotation of the task."""

    task_desc: str
    high_descs: list[str] = Field(default_factory=list)
    """Step-by-step instructions (here: the walkthrough)."""


class TurkAnnotations(BaseModel):
    anns: list[Annotation]


class TrajData(BaseModel):
    """The fields of ALFRED's ``traj_data.json`` that ALFWorld reads."""

    task_id: str
    task_type: str
    pddl_params: PddlParams
    scene: SceneInfo
    turk_annotations: TurkAnnotations


class GameData(BaseModel):
    """A ``game.tw-pddl`` file: what TextWorld's ``PddlEnv`` loads."""

    pddl_domain: str
    grammar: str
    pddl_problem: str
    solvable: bool | None = None
    walkthrough: list[str] | None = None


def traj_data(scene: Scene) -> TrajData:
    """The ``traj_data.json`` content of ``scene``."""
    room = scene.room
    return TrajData(
        task_id=f"evolvent_{scene.task_type}_seed{scene.seed}",
        task_type=scene.task_type,
        pddl_params=scene.params,
        scene=SceneInfo(
            floor_plan=f"FloorPlan{room.scene_num}",
            scene_num=room.scene_num,
            random_seed=scene.seed,
        ),
        turk_annotations=TurkAnnotations(
            anns=[Annotation(task_desc=scene.task_desc, high_descs=scene.walkthrough)]
        ),
    )


# --- Files -------------------------------------------------------------------------------


def alfworld_logic_files() -> tuple[Path, Path]:
    """ALFWorld's domain (``alfred.pddl``) and grammar (``alfred.twl2``), found without
    importing ``alfworld`` (whose import creates folders and sets ``ALFWORLD_DATA``)."""
    spec = importlib.util.find_spec("alfworld")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        data = Path(location) / "data"
        domain, grammar = data / "alfred.pddl", data / "alfred.twl2"
        if domain.is_file() and grammar.is_file():
            return domain, grammar
    raise EvolventError(
        "ALFWorld is not installed (no alfworld/data/alfred.pddl): "
        "pip install alfworld==0.4.2 in this environment"
    )


def game_dir(task_type: str, seed: int, games_dir: Path) -> Path:
    """The folder of one generated game (whether or not it exists yet)."""
    check_task_type(task_type)
    return Path(games_dir) / "alfworld" / f"{task_type}-v{GAMES_VERSION}-seed{seed}"


def write_game(scene: Scene, folder: Path) -> Path:
    """Write the game files of ``scene`` into ``folder``; return the ``game.tw-pddl``."""
    domain, grammar = alfworld_logic_files()
    problem = problem_pddl(scene)
    data = GameData(
        pddl_domain=domain.read_text(),
        grammar=grammar.read_text().replace("UNKNOWN GOAL", scene.task_desc),
        pddl_problem=problem,
        solvable=True,
        walkthrough=scene.walkthrough,
    )
    (folder / PROBLEM_FILE).write_text(problem)
    (folder / TRAJ_FILE).write_text(traj_data(scene).model_dump_json(indent=2))
    (folder / GAME_FILE).write_text(data.model_dump_json())
    return folder / GAME_FILE


def ensure_game(task_type: str, seed: int, games_dir: Path) -> Path:
    """The ``game.tw-pddl`` of (``task_type``, ``seed``), written first if not cached."""
    if seed < 0:
        raise ConfigError(f"ALFWorld seeds must be >= 0, got {seed}")
    final = game_dir(task_type, seed, games_dir)
    if (final / GAME_FILE).is_file():
        return final / GAME_FILE
    scene = build_scene(task_type, seed)
    return publish_folder(final, GAME_FILE, lambda staging: write_game(scene, staging))
