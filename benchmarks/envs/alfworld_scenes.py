"""The scenes of the project's own ALFWorld games: ALFWorld's six task types, the rooms
(which receptacles and objects exist, what holds what, ALFRED's object properties) and
``build_scene``, which draws a scene from (task type, seed) with a walkthrough that wins it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pydantic import BaseModel

from agent.errors import UnknownEnvError

TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)
"""ALFWorld's six task types, in ALFWorld's order (its task type ids 1–6)."""

# --- What exists in a room ---------------------------------------------------------------

_FOOD = ("Apple", "Tomato", "Potato", "Egg", "Bread", "Lettuce")
_DISHES = ("Mug", "Cup", "Bowl", "Plate")
_COOKWARE = ("Pan", "Pot", "Kettle")
_UTENSILS = ("Fork", "Spoon", "Knife", "ButterKnife", "Spatula", "Ladle")
_KITCHEN_MISC = ("DishSponge", "SaltShaker", "PepperShaker", "SoapBottle")
_SMALL_THINGS = ("Book", "CD", "CellPhone", "Pen", "Pencil", "KeyChain", "CreditCard")
_BEDROOM_OBJECTS = (*_SMALL_THINGS, "AlarmClock", "Laptop", "Pillow")

# Object properties, as ALFRED defines them (alfworld.gen.constants.VAL_ACTION_OBJECTS).
HEATABLE = frozenset({"Apple", "Bread", "Cup", "Egg", "Mug", "Plate", "Potato", "Tomato"})
COOLABLE = frozenset(
    {"Apple", "Bowl", "Bread", "Cup", "Egg", "Lettuce", "Mug", "Pan", "Plate", "Pot"}
    | {"Potato", "Tomato"}
)
CLEANABLE = frozenset(
    {"Apple", "Bowl", "ButterKnife", "Cup", "DishSponge", "Egg", "Fork", "Kettle", "Knife"}
    | {"Ladle", "Lettuce", "Mug", "Pan", "Plate", "Pot", "Potato", "Spatula", "Spoon"}
    | {"Tomato"}
)
OPENABLE = frozenset({"Cabinet", "Drawer", "Fridge", "Microwave", "Safe"})
LAMP = "DeskLamp"


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

# The appliance each state-changing task type uses, and the verb of its command.
_APPLIANCE: dict[str, tuple[str, str]] = {
    "pick_clean_then_place_in_recep": ("SinkBasin", "clean"),
    "pick_heat_then_place_in_recep": ("Microwave", "heat"),
    "pick_cool_then_place_in_recep": ("Fridge", "cool"),
}


# --- Scenes ------------------------------------------------------------------------------


class PddlParams(BaseModel):
    """The targets of a task, as ALFRED names them (class names, ``""`` when unused)."""

    object_target: str
    parent_target: str = ""
    toggle_target: str = ""
    mrecep_target: str = ""
    object_sliced: bool = False


@dataclass(frozen=True)
class Thing:
    """An object or receptacle: its ALFRED class and the number the player sees."""

    kind: str
    number: int

    @property
    def name(self) -> str:
        """What ALFWorld calls it in text, e.g. ``cabinet 2``, ``sinkbasin 1``."""
        return f"{self.kind.lower()} {self.number}"


@dataclass
class Scene:
    task_type: str
    seed: int
    room: _Room
    receptacles: list[Thing]
    placed: list[tuple[Thing, Thing]]
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


def count_kind(things: list[Thing], kind: str) -> int:
    return sum(1 for thing in things if thing.kind == kind)


def _add(things: list[Thing], kind: str) -> Thing:
    thing = Thing(kind, count_kind(things, kind) + 1)
    things.append(thing)
    return thing


def _holders(room: _Room, receptacles: list[Thing], obj: str, avoid: set[str]) -> list[Thing]:
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
            "pick_clean_then_place_in_recep": CLEANABLE,
            "pick_heat_then_place_in_recep": HEATABLE,
            "pick_cool_then_place_in_recep": COOLABLE,
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


def build_scene(task_type: str, seed: int) -> Scene:
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
    receptacles: list[Thing] = []
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
    placed: list[tuple[Thing, Thing]] = []
    objects: list[Thing] = []
    copies = 2 if task_type == "pick_two_obj_and_place" else rng.randint(1, 2)
    for _ in range(copies):
        placed.append((_add(objects, obj), rng.choice(sources)))

    if lamp_task:
        holder = rng.choice([r for r in receptacles if r.kind == dest])
        placed.append((_add(objects, LAMP), holder))

    distractor_kinds = [k for k in room.objects if k != obj]
    for kind in rng.sample(distractor_kinds, k=rng.randint(3, 5)):
        spots = _holders(room, receptacles, kind, set())
        if spots:
            placed.append((_add(objects, kind), rng.choice(spots)))

    targets = [o for o, _ in placed if o.kind == obj]
    params = PddlParams(
        object_target=obj,
        parent_target="" if lamp_task else dest,
        toggle_target=LAMP if lamp_task else "",
    )
    template = rng.choice(_TEMPLATES[task_type])
    task_desc = template.format(obj=obj.lower(), recep=dest.lower(), toggle=LAMP.lower())
    scene = Scene(task_type, seed, room, receptacles, placed, params, task_desc, [])
    scene.walkthrough = _walkthrough(scene, targets)
    return scene


def _walkthrough(scene: Scene, targets: list[Thing]) -> list[str]:
    """The commands that solve the scene: fetch each target (opening what is closed),
    use the appliance or lamp, and put it where the task says."""
    start = dict(scene.placed)
    opened: set[Thing] = set()
    commands: list[str] = []
    here: Thing | None = None

    def go(receptacle: Thing) -> None:
        nonlocal here
        if here != receptacle:
            commands.append(f"go to {receptacle.name}")
            here = receptacle
        if receptacle.kind in OPENABLE and receptacle not in opened:
            commands.append(f"open {receptacle.name}")
            opened.add(receptacle)

    dest_kind = scene.params.parent_target
    dest = next((r for r in scene.receptacles if r.kind == dest_kind), None)
    for target in targets[: 2 if scene.task_type == "pick_two_obj_and_place" else 1]:
        go(start[target])
        commands.append(f"take {target.name} from {start[target].name}")
        if scene.task_type == "look_at_obj_in_light":
            lamp = next(o for o in start if o.kind == LAMP)
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
