"""The project's own ALFWorld games: small scenes written as ALFWorld game files.

ALFWorld's official games cannot be downloaded on every machine, so this module writes
games of the same format for each of the six task types: a PDDL problem over ALFWorld's
own domain (``alfred.pddl``), wrapped with ALFWorld's grammar (``alfred.twl2``) in a
``game.tw-pddl`` file, beside the ``traj_data.json`` that ALFWorld's tools read (task type,
``pddl_params``, scene, annotated task description). The real engine (TextWorld's PDDL
environment with ALFWorld's wrappers) plays them exactly like the official games.

A game is a pure function of (task type, seed): the seed picks the room, the target
object and receptacle, where everything starts, which receptacles exist and the
distractors. Each game carries a walkthrough, computed here from the scene, which the
tests play on the real engine. Games are written once into their own folder under
``games_dir/alfworld`` (staged under a temporary name, then renamed: the rename is atomic).
"""

from __future__ import annotations

import importlib.util
import random
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from agent.errors import ConfigError, EvolventError, UnknownEnvError
from benchmarks.envs.staging import publish_folder

TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
"""ALFWorld's six task types, in ALFWorld's order (its task type ids 1–6)."""

GAME_FILE = "game.tw-pddl"
TRAJ_FILE = "traj_data.json"
PROBLEM_FILE = "initial_state.pddl"
GAMES_VERSION = 1
"""Bumped whenever the content of generated games changes, so stale caches are not reused."""

# --- What exists in a room ---------------------------------------------------------------

_FOOD = ("Apple", "Tomato", "Potato", "Egg", "Bread", "Lettuce")
_DISHES = ("Mug", "Cup", "Bowl", "Plate")
_COOKWARE = ("Pan", "Pot", "Kettle")
_UTENSILS = ("Fork", "Spoon", "Knife", "ButterKnife", "Spatula", "Ladle")
_KITCHEN_MISC = ("DishSponge", "SaltShaker", "PepperShaker", "SoapBottle")
_SMALL_THINGS = ("Book", "CD", "CellPhone", "Pen", "Pencil", "KeyChain", "CreditCard")
_BEDROOM_OBJECTS = (*_SMALL_THINGS, "AlarmClock", "Laptop", "Pillow")

# Object properties, as ALFRED defines them (alfworld.gen.constants.VAL_ACTION_OBJECTS).
_HEATABLE = frozenset({"Apple", "Bread", "Cup", "Egg", "Mug", "Plate", "Potato", "Tomato"})
_COOLABLE = frozenset(
    {"Apple", "Bowl", "Bread", "Cup", "Egg", "Lettuce", "Mug", "Pan", "Plate", "Pot"}
    | {"Potato", "Tomato"}
)
_CLEANABLE = frozenset(
    {"Apple", "Bowl", "ButterKnife", "Cup", "DishSponge", "Egg", "Fork", "Kettle", "Knife"}
    | {"Ladle", "Lettuce", "Mug", "Pan", "Plate", "Pot", "Potato", "Spatula", "Spoon"}
    | {"Tomato"}
)
_OPENABLE = frozenset({"Cabinet", "Drawer", "Fridge", "Microwave", "Safe"})
_LAMP = "DeskLamp"
_DOMAIN_OTYPES = frozenset({"Knife", "ButterKnife"})
_DOMAIN_RTYPES = frozenset({"SinkBasin", "Microwave", "Fridge"})


@dataclass(frozen=True)
class _Room:
    """Receptacle kinds of one kind of room and the object kinds each can hold."""

    scene_num: int
    """ALFRED floor plan the room is modelled on (kitchens 1–30, bedrooms 301–330)."""
    holds: dict[str, frozenset[str]]
    objects: tuple[str, ...]
    max_copies: dict[str, int]
    """How many instances of a receptacle kind a scene may have (default 1)."""


_KITCHEN = _Room(
    scene_num=7,
    holds={
        "CounterTop": frozenset((*_FOOD, *_DISHES, *_COOKWARE, *_UTENSILS, *_KITCHEN_MISC)),
        "DiningTable": frozenset((*_FOOD, *_DISHES, *_COOKWARE, *_UTENSILS, *_KITCHEN_MISC)),
        "Cabinet": frozenset((*_DISHES, *_COOKWARE, *_KITCHEN_MISC)),
        "Drawer": frozenset((*_UTENSILS, "DishSponge", "SaltShaker", "PepperShaker")),
        "Fridge": frozenset((*_FOOD, *_DISHES, "Pan", "Pot")),
        "Microwave": frozenset(("Apple", "Tomato", "Potato", "Egg", "Bread", *_DISHES)),
        "SinkBasin": frozenset((*_FOOD, *_DISHES, *_COOKWARE, *_UTENSILS, "DishSponge")),
        "Shelf": frozenset((*_DISHES, "SaltShaker", "PepperShaker", "SoapBottle", "Kettle")),
        "StoveBurner": frozenset(("Pan", "Pot", "Kettle")),
        "GarbageCan": frozenset((*_FOOD, "DishSponge", "SoapBottle")),
    },
    objects=(*_FOOD, *_DISHES, *_COOKWARE, *_UTENSILS, *_KITCHEN_MISC),
    max_copies={"CounterTop": 2, "Cabinet": 3, "Drawer": 3, "StoveBurner": 2},
)

_BEDROOM = _Room(
    scene_num=301,
    holds={
        "Desk": frozenset((*_SMALL_THINGS, "AlarmClock", "Laptop", "Mug", "Bowl")),
        "SideTable": frozenset((*_SMALL_THINGS, "AlarmClock", "Laptop", "Mug", "Bowl")),
        "Dresser": frozenset((*_SMALL_THINGS, "AlarmClock", "Laptop", "Mug", "Bowl")),
        "Bed": frozenset(("Book", "CellPhone", "Laptop", "Pillow")),
        "Drawer": frozenset(_SMALL_THINGS),
        "Shelf": frozenset(("Book", "CD", "AlarmClock", "KeyChain", "CreditCard", "Pen", "Mug")),
        "GarbageCan": frozenset(("CD", "Pen", "Pencil", "CreditCard")),
        "Safe": frozenset(("CD", "CellPhone", "KeyChain", "CreditCard")),
    },
    objects=(*_BEDROOM_OBJECTS, "Mug", "Bowl"),
    max_copies={"Drawer": 3, "Shelf": 2, "SideTable": 2},
)

_LAMP_HOLDERS = ("Desk", "SideTable", "Dresser")

# --- Task descriptions: ALFWorld's own templates (alfworld.gen.goal_library) -------------

_TEMPLATES: dict[str, tuple[str, str]] = {
    "pick_and_place_simple": ("put a {obj} in {recep}", "put some {obj} on {recep}"),
    "look_at_obj_in_light": (
        "look at {obj} under the {toggle}",
        "examine the {obj} with the {toggle}",
    ),
    "pick_clean_then_place_in_recep": (
        "put a clean {obj} in {recep}",
        "clean some {obj} and put it in {recep}",
    ),
    "pick_heat_then_place_in_recep": (
        "put a hot {obj} in {recep}",
        "heat some {obj} and put it in {recep}",
    ),
    "pick_cool_then_place_in_recep": (
        "put a cool {obj} in {recep}",
        "cool some {obj} and put it in {recep}",
    ),
    "pick_two_obj_and_place": (
        "put two {obj} in {recep}",
        "find two {obj} and put them in {recep}",
    ),
}

# --- Goals: ALFWorld's PDDL goals per task type (alfworld.gen.goal_library) -------------

_PLACE_GOAL = """(:goal
  (exists (?r - receptacle ?o - object)
    (and (objectType ?o {obj}Type) (receptacleType ?r {recep}Type){extra}
         (inReceptacle ?o ?r))))"""

_GOALS: dict[str, str] = {
    "pick_and_place_simple": _PLACE_GOAL.replace("{extra}", ""),
    "pick_clean_then_place_in_recep": _PLACE_GOAL.replace(
        "{extra}", "\n         (cleanable ?o) (isClean ?o)"
    ),
    "pick_heat_then_place_in_recep": _PLACE_GOAL.replace(
        "{extra}", "\n         (heatable ?o) (isHot ?o)"
    ),
    "pick_cool_then_place_in_recep": _PLACE_GOAL.replace(
        "{extra}", "\n         (coolable ?o) (isCool ?o)"
    ),
    "pick_two_obj_and_place": """(:goal
  (exists (?r - receptacle ?o1 - object ?o2 - object)
    (and (receptacleType ?r {recep}Type)
         (objectType ?o1 {obj}Type) (inReceptacle ?o1 ?r)
         (objectType ?o2 {obj}Type) (inReceptacle ?o2 ?r)
         (not (= ?o1 ?o2)))))""",
    "look_at_obj_in_light": """(:goal
  (and
    (exists (?ot - object ?r - receptacle ?a - agent ?l - location)
      (and (objectType ?ot {toggle}Type) (toggleable ?ot) (isToggled ?ot)
           (receptacleAtLocation ?r ?l) (atLocation ?a ?l) (inReceptacle ?ot ?r)))
    (exists (?o - object ?a - agent)
      (and (objectType ?o {obj}Type) (holds ?a ?o)))))""",
}

# The appliance each state-changing task type uses, and the verb of its command.
_APPLIANCE: dict[str, tuple[str, str]] = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "clean"),
    "pick_heat_then_place_in_recep": ("Microwave", "heat"),
    "pick_cool_then_place_in_recep": ("Fridge", "cool"),
}


# --- File models -------------------------------------------------------------------------


class PddlParams(BaseModel):
    """The targets of a task, as ALFRED names them (class names, ``""`` when unused)."""

    object_target: str
    parent_target: str = ""
    toggle_target: str = ""
    mrecep_target: str = ""
    object_sliced: bool = False


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


# --- Scenes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Thing:
    """An object or receptacle: its ALFRED class and the number the player sees."""

    kind: str
    number: int

    @property
    def name(self) -> str:
        """What ALFWorld calls it in text, e.g. ``cabinet 2``, ``sinkbasin 1``."""
        return f"{self.kind.lower()} {self.number}"


@dataclass
class _Scene:
    task_type: str
    seed: int
    room: _Room
    receptacles: list[_Thing]
    placed: list[tuple[_Thing, _Thing]]
    """(object, receptacle it starts in)."""
    params: PddlParams
    task_desc: str
    walkthrough: list[str]


def check_task_type(task_type: str) -> str:
    """``task_type`` if it is one of ALFWorld's six; ``UnknownEnvError`` otherwise."""
    if task_type not in TASK_TYPES:
        raise UnknownEnvError(
            f"unknown ALFWorld task type {task_type!r}; valid: {', '.join(TASK_TYPES)}"
        )
    return task_type


def _count(things: list[_Thing], kind: str) -> int:
    return sum(1 for thing in things if thing.kind == kind)


def _add(things: list[_Thing], kind: str) -> _Thing:
    thing = _Thing(kind, _count(things, kind) + 1)
    things.append(thing)
    return thing


def _holders(room: _Room, receptacles: list[_Thing], obj: str, avoid: set[str]) -> list[_Thing]:
    return [r for r in receptacles if obj in room.holds[r.kind] and r.kind not in avoid]


def _pick_targets(task_type: str, rng: random.Random) -> tuple[_Room, str, str]:
    """(room, object kind, destination kind; the lamp holder for look_at_obj_in_light)."""
    if task_type == "look_at_obj_in_light":
        obj = rng.choice([o for o in _BEDROOM.objects if o not in ("Pillow", "Laptop")])
        return _BEDROOM, obj, rng.choice(_LAMP_HOLDERS)
    if task_type == "pick_and_place_simple":
        room = rng.choice((_KITCHEN, _BEDROOM))
        candidates = [o for o in room.objects if o != "Pillow"]
    elif task_type == "pick_two_obj_and_place":
        room = rng.choice((_KITCHEN, _BEDROOM))
        candidates = [o for o in room.objects if o not in (*_COOKWARE, "Laptop", "Pillow")]
    else:
        room = _KITCHEN
        able = {
            "pick_clean_then_place_in_recep": _CLEANABLE,
            "pick_heat_then_place_in_recep": _HEATABLE,
            "pick_cool_then_place_in_recep": _COOLABLE,
        }[task_type]
        candidates = [o for o in room.objects if o in able]
    obj = rng.choice(sorted(candidates))
    appliance = _APPLIANCE.get(task_type, ("", ""))[0]
    destinations = [
        kind
        for kind, holds in room.holds.items()
        if obj in holds and kind not in (appliance, "GarbageCan", "SinkBasin")
    ]
    return room, obj, rng.choice(sorted(destinations))


def build_scene(task_type: str, seed: int) -> _Scene:
    """The scene of game (``task_type``, ``seed``), with a walkthrough that wins it."""
    check_task_type(task_type)
    rng = random.Random(f"alfworld:{task_type}:{seed}")
    room, obj, dest = _pick_targets(task_type, rng)
    appliance = _APPLIANCE.get(task_type, ("", ""))[0]
    lamp_task = task_type == "look_at_obj_in_light"

    # Receptacles: the ones the task needs, a few more, and extra copies of some kinds.
    kinds = {dest, *([appliance] if appliance else [])}
    others = [k for k in sorted(room.holds) if k not in kinds]
    kinds.update(rng.sample(others, k=rng.randint(3, min(5, len(others)))))
    receptacles: list[_Thing] = []
    for kind in sorted(kinds):
        for _ in range(rng.randint(1, room.max_copies.get(kind, 1))):
            _add(receptacles, kind)

    # The goal must not hold at the start: no object of the target kind starts in a
    # receptacle of the destination kind (nor, for "cool"/"heat", in the appliance).
    avoid = {dest, appliance} if not lamp_task else {"GarbageCan"}
    sources = _holders(room, receptacles, obj, avoid)
    if not sources:  # the object fits none of the drawn extras: add a counter/table for it
        fallback = "CounterTop" if room is _KITCHEN else "Dresser"
        if fallback in avoid:
            fallback = "DiningTable" if room is _KITCHEN else "SideTable"
        sources = [_add(receptacles, fallback)]
    placed: list[tuple[_Thing, _Thing]] = []
    objects: list[_Thing] = []
    copies = 2 if task_type == "pick_two_obj_and_place" else rng.randint(1, 2)
    for _ in range(copies):
        placed.append((_add(objects, obj), rng.choice(sources)))

    if lamp_task:
        holder = rng.choice([r for r in receptacles if r.kind == dest])
        placed.append((_add(objects, _LAMP), holder))

    distractor_kinds = [k for k in room.objects if k != obj]
    for kind in rng.sample(distractor_kinds, k=rng.randint(3, 5)):
        spots = _holders(room, receptacles, kind, set())
        if spots:
            placed.append((_add(objects, kind), rng.choice(spots)))

    targets = [o for o, _ in placed if o.kind == obj]
    params = PddlParams(
        object_target=obj,
        parent_target="" if lamp_task else dest,
        toggle_target=_LAMP if lamp_task else "",
    )
    template = rng.choice(_TEMPLATES[task_type])
    task_desc = template.format(obj=obj.lower(), recep=dest.lower(), toggle=_LAMP.lower())
    scene = _Scene(task_type, seed, room, receptacles, placed, params, task_desc, [])
    scene.walkthrough = _walkthrough(scene, targets)
    return scene


def _walkthrough(scene: _Scene, targets: list[_Thing]) -> list[str]:
    """The commands that solve the scene: fetch each target (opening what is closed),
    use the appliance or lamp, and put it where the task says."""
    start = dict(scene.placed)
    opened: set[_Thing] = set()
    commands: list[str] = []
    here: _Thing | None = None

    def go(receptacle: _Thing) -> None:
        nonlocal here
        if here != receptacle:
            commands.append(f"go to {receptacle.name}")
            here = receptacle
        if receptacle.kind in _OPENABLE and receptacle not in opened:
            commands.append(f"open {receptacle.name}")
            opened.add(receptacle)

    dest_kind = scene.params.parent_target
    dest = next((r for r in scene.receptacles if r.kind == dest_kind), None)
    for target in targets[: 2 if scene.task_type == "pick_two_obj_and_place" else 1]:
        go(start[target])
        commands.append(f"take {target.name} from {start[target].name}")
        if scene.task_type == "look_at_obj_in_light":
            lamp = next(o for o in start if o.kind == _LAMP)
            go(start[lamp])
            commands.append(f"use {lamp.name}")
            return commands
        if scene.task_type in _APPLIANCE:
            kind, verb = _APPLIANCE[scene.task_type]
            appliance = next(r for r in scene.receptacles if r.kind == kind)
            if here != appliance:
                commands.append(f"go to {appliance.name}")
                here = appliance
            commands.append(f"{verb} {target.name} with {appliance.name}")
        assert dest is not None
        go(dest)
        commands.append(f"move {target.name} to {dest.name}")
    return commands


# --- PDDL --------------------------------------------------------------------------------


def _pddl_ids(things: list[_Thing]) -> dict[_Thing, str]:
    """PDDL names that ALFWorld's demangler turns back into ``thing.name``.

    The demangler numbers the instances of a kind in sorted order of their PDDL names,
    counting down from the number of instances; the names are built to match. A sink
    basin's name ends in ``SinkBasin``, as in ALFRED, which the demangler relies on.
    """
    ids: dict[_Thing, str] = {}
    for thing in things:
        rank = _count(things, thing.kind) - thing.number
        base = "Sink" if thing.kind == "SinkBasin" else thing.kind
        suffix = "_bar_SinkBasin" if thing.kind == "SinkBasin" else ""
        ids[thing] = f"{base}_bar_{rank:02d}{suffix}"
    return ids


def problem_pddl(scene: _Scene) -> str:
    """The PDDL problem of ``scene`` over ALFWorld's ``alfred`` domain."""
    objects = [o for o, _ in scene.placed]
    obj_ids = _pddl_ids(objects)
    rec_ids = _pddl_ids(scene.receptacles)
    locations = {r: f"loc_bar_{i + 1:02d}" for i, r in enumerate(scene.receptacles)}
    start = "loc_bar_00"
    rtypes = sorted({r.kind for r in scene.receptacles})
    # Types the domain's actions name (CleanObject, HeatObject, ...) must always exist.
    otypes = sorted({o.kind for o in objects} | set(scene.room.objects) | _DOMAIN_OTYPES)
    declared_rtypes = sorted(set(rtypes) | _DOMAIN_RTYPES)

    init = [f"(atLocation agent1 {start})"]
    for r in scene.receptacles:
        init.append(f"(receptacleType {rec_ids[r]} {r.kind}Type)")
        init.append(f"(receptacleAtLocation {rec_ids[r]} {locations[r]})")
        if r.kind in _OPENABLE:
            init.append(f"(openable {rec_ids[r]})")
    for o, r in scene.placed:
        oid = obj_ids[o]
        init.append(f"(objectType {oid} {o.kind}Type)")
        init.append(f"(inReceptacle {oid} {rec_ids[r]})")
        init.append(f"(objectAtLocation {oid} {locations[r]})")
        if o.kind == _LAMP:
            init.append(f"(toggleable {oid})")
            continue
        init.append(f"(pickupable {oid})")
        for prop, kinds in (
            ("cleanable", _CLEANABLE),
            ("heatable", _HEATABLE),
            ("coolable", _COOLABLE),
        ):
            if o.kind in kinds:
                init.append(f"({prop} {oid})")
    for rtype in rtypes:
        for otype in sorted(scene.room.holds[rtype]):
            init.append(f"(canContain {rtype}Type {otype}Type)")

    params = scene.params
    goal = _GOALS[scene.task_type].format(
        obj=params.object_target,
        recep=params.parent_target,
        toggle=params.toggle_target,
    )
    declarations = [
        "agent1 - agent",
        *(f"{rid} - receptacle" for rid in rec_ids.values()),
        *(f"{oid} - object" for oid in obj_ids.values()),
        *(f"{loc} - location" for loc in [start, *locations.values()]),
        *(f"{kind}Type - otype" for kind in otypes),
        *(f"{kind}Type - rtype" for kind in declared_rtypes),
    ]
    lines = [
        f"(define (problem evolvent_{scene.task_type}_seed{scene.seed})",
        "(:domain alfred)",
        "(:objects",
        *(f"  {d}" for d in declarations),
        ")",
        "(:init",
        *(f"  {fact}" for fact in init),
        ")",
        goal,
        ")",
    ]
    return "\n".join(lines) + "\n"


def traj_data(scene: _Scene) -> TrajData:
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


def write_game(scene: _Scene, folder: Path) -> Path:
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
