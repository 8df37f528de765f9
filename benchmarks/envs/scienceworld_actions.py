"""ScienceWorld's admissible actions: the simulator's valid action list, each action once
under one wording, pruned of the forms no task needs (``admissible_actions``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Key = tuple[int, tuple[int, ...]]
"""A simulator action: (template id, object ids), e.g. ``(9, (17259, 1899))`` = move X to Y."""

# Template ids of the simulator (ActionDefinitions) and object type ids (object_type_ids.tsv).
_LOOK_IN, _MOVE, _POUR, _RESET, _PICK_UP, _DUNK = 5, 9, 10, 12, 21, 26
_AGENT, _INVENTORY, _DOOR = 0, 1, 140
_LOCATIONS = frozenset({130, 131, 132, 133})


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
    return prune_entries(action_entries(valid))


def action_entries(valid: Sequence[Mapping[str, Any]]) -> dict[Key, tuple[str, tuple[int, ...]]]:
    """Each simulator action once: its first wording in sort order, its objects' types."""
    entries: dict[Key, tuple[str, tuple[int, ...]]] = {}
    for item in valid:
        key: Key = (int(item["template_id"]), tuple(int(i) for i in item["obj_ids"]))
        text = str(item["action"])
        types = tuple(int(t) for t in item["type_ids"])
        if key not in entries or text < entries[key][0]:
            entries[key] = (text, types)
    return entries


def prune_entries(entries: Mapping[Key, tuple[str, tuple[int, ...]]]) -> dict[str, Key]:
    """The admissible actions among ``entries``, sorted (see ``admissible_actions``)."""
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
