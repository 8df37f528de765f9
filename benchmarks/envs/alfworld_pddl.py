"""The PDDL problem of a scene (``problem_pddl``) over ALFWorld's own domain
(``alfred.pddl``): the scene's objects and receptacles under names ALFWorld's demangler turns
back into readable ones, their initial facts, and ALFWorld's goal for the task type."""

from __future__ import annotations

from benchmarks.envs.alfworld_scenes import (
    CLEANABLE,
    COOLABLE,
    HEATABLE,
    LAMP,
    OPENABLE,
    Scene,
    Thing,
    count_kind,
)

_DOMAIN_OTYPES = frozenset({"Knife", "ButterKnife"})
_DOMAIN_RTYPES = frozenset({"SinkBasin", "Microwave", "Fridge"})

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


def _pddl_ids(things: list[Thing]) -> dict[Thing, str]:
    """PDDL names that ALFWorld's demangler turns back into ``thing.name``.

    The demangler numbers the instances of a kind in sorted order of their PDDL names,
    counting down from the number of instances; the names are built to match. A sink
    basin's name ends in ``SinkBasin``, as in ALFRED, which the demangler relies on.
    """
    ids: dict[Thing, str] = {}
    for thing in things:
        rank = count_kind(things, thing.kind) - thing.number
        base = "Sink" if thing.kind == "SinkBasin" else thing.kind
        suffix = "_bar_SinkBasin" if thing.kind == "SinkBasin" else ""
        ids[thing] = f"{base}_bar_{rank:02d}{suffix}"
    return ids


def problem_pddl(scene: Scene) -> str:
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
        if r.kind in OPENABLE:
            init.append(f"(openable {rec_ids[r]})")
    for o, r in scene.placed:
        oid = obj_ids[o]
        init.append(f"(objectType {oid} {o.kind}Type)")
        init.append(f"(inReceptacle {oid} {rec_ids[r]})")
        init.append(f"(objectAtLocation {oid} {locations[r]})")
        if o.kind == LAMP:
            init.append(f"(toggleable {oid})")
            continue
        init.append(f"(pickupable {oid})")
        for prop, kinds in (
            ("cleanable", CLEANABLE),
            ("heatable", HEATABLE),
            ("coolable", COOLABLE),
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
