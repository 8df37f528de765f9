"""Parametrized macros: merge action sequences that differ only in a few object words.

Env-agnostic, by string alignment only: two sequences of the same length unify when every
pair of steps is equal, or starts with the same word and differs only by word spans that are
replaced consistently everywhere (``take red apple; slice red apple`` and ``take carrot;
slice carrot`` give ``take {X}; slice {X}``). At most two slots, each value at most three
words, and at least one slot must link two steps (the object that flows through the
procedure), and the first step must have a slot (an offer binds it). Slot values are filled
at use time from the admissible actions: the first step's slots when the tool is offered
(one option per binding), a later step's remaining slots when it runs (it must then match
exactly one admissible action).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher

from pydantic import BaseModel, Field

SLOT_NAMES = ("X", "Y")
MAX_VALUE_WORDS = 3
_SEP = "\x1f"


class MinedTemplate(BaseModel):
    steps: list[str]
    """Steps with ``{X}``/``{Y}`` placeholders."""
    slots: list[str]
    instances: list[dict[str, str]] = Field(default_factory=list)
    """Slot values seen in the trajectories, one dict per distinct instantiation."""
    support: list[str] = Field(default_factory=list)
    """Ids of the episodes that contain an instantiation."""


def placeholder(slot: str) -> str:
    return "{" + slot + "}"


def slots_in(step: str, slots: Sequence[str]) -> list[str]:
    return [s for s in slots if placeholder(s) in step]


def unify(a: Sequence[str], b: Sequence[str]) -> tuple[list[str], list[str]] | None:
    """The template (steps, slot names) both sequences instantiate, or None."""
    if len(a) != len(b) or list(a) == list(b) or any("{" in s or "}" in s for s in (*a, *b)):
        return None
    slot_of: dict[tuple[str, str], str] = {}
    seen_a: set[str] = set()
    seen_b: set[str] = set()
    out: list[str] = []
    for sa, sb in zip(a, b, strict=True):
        if sa == sb:
            out.append(sa)
            continue
        wa, wb = sa.split(), sb.split()
        if not wa or not wb or wa[0] != wb[0]:
            return None  # a slot never covers a command's first word
        parts: list[str] = []
        for tag, i1, i2, j1, j2 in SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
            if tag == "equal":
                parts.extend(wa[i1:i2])
                continue
            if tag != "replace" or max(i2 - i1, j2 - j1) > MAX_VALUE_WORDS:
                return None
            pair = (" ".join(wa[i1:i2]), " ".join(wb[j1:j2]))
            slot = slot_of.get(pair)
            if slot is None:
                # One value stands for one slot on each side, or the alignment is accidental.
                if pair[0] in seen_a or pair[1] in seen_b or len(slot_of) == len(SLOT_NAMES):
                    return None
                slot = SLOT_NAMES[len(slot_of)]
                slot_of[pair] = slot
                seen_a.add(pair[0])
                seen_b.add(pair[1])
            parts.append(placeholder(slot))
        out.append(" ".join(parts))
    slots = list(slot_of.values())
    if not any(sum(placeholder(s) in step for step in out) >= 2 for s in slots):
        return None
    return out, slots


def _pattern(steps: Sequence[str], slots: Sequence[str]) -> re.Pattern[str]:
    """One regex over the steps joined by a separator; a repeated slot must repeat its value."""
    names = "|".join(re.escape(placeholder(s)) for s in slots)
    bound: set[str] = set()
    parts: list[str] = []
    for step in steps:
        pieces: list[str] = []
        for piece in re.split(f"({names})", step) if slots else [step]:
            slot = piece[1:-1] if piece in {placeholder(s) for s in slots} else None
            if slot is None:
                pieces.append(re.escape(piece))
            elif slot in bound:
                pieces.append(f"(?P={slot})")
            else:
                bound.add(slot)
                pieces.append(f"(?P<{slot}>[^{_SEP}]+?)")
        parts.append("".join(pieces))
    return re.compile(re.escape(_SEP).join(parts))


def match(steps: Sequence[str], slots: Sequence[str], actions: Sequence[str]) -> dict[str, str]:
    """Slot values if ``actions`` instantiate the template steps, else an empty dict
    (and ``{}`` with a truthy check also for a template without slots: use ``matches``)."""
    if len(steps) != len(actions):
        return {}
    m = _pattern(steps, slots).fullmatch(_SEP.join(actions))
    return {k: v for k, v in m.groupdict().items() if v is not None} if m else {}


def matches(steps: Sequence[str], slots: Sequence[str], actions: Sequence[str]) -> bool:
    if len(steps) != len(actions):
        return False
    return _pattern(steps, slots).fullmatch(_SEP.join(actions)) is not None


def instantiate(steps: Sequence[str], args: dict[str, str]) -> list[str]:
    """Steps with the bound slots replaced by their values (unbound ones stay)."""
    out = []
    for step in steps:
        for slot, value in args.items():
            step = step.replace(placeholder(slot), value)
        out.append(step)
    return out


def bindings(step: str, slots: Sequence[str], admissible: Iterable[str]) -> list[dict[str, str]]:
    """Every way the admissible actions fill the slots of ``step``, in admissible order."""
    used = slots_in(step, slots)
    if not used:
        return []
    pattern = _pattern([step], used)
    out: list[dict[str, str]] = []
    for action in admissible:
        m = pattern.fullmatch(action)
        if m is not None:
            found = {k: v for k, v in m.groupdict().items() if v is not None}
            if found not in out:
                out.append(found)
    return out


def resolve_step(step: str, admissible: Iterable[str], slots: Sequence[str] = ()) -> str | None:
    """The action to run for a (maybe partly bound) macro step now: the step itself when it
    is admissible; for a step with unbound slots, the one admissible action it matches.
    None when the step cannot run (not admissible, or ambiguous)."""
    allowed = list(admissible)
    if not slots_in(step, slots):
        return step if step in allowed else None
    found = bindings(step, slots, allowed)
    return instantiate([step], found[0])[0] if len(found) == 1 else None


def canonical(steps: Sequence[str], slots: Sequence[str]) -> tuple[list[str], list[str]]:
    """Rename slots X, Y in order of first appearance; drop slots that do not appear."""
    order: list[str] = []
    for step in steps:
        for s in re.findall(r"\{([A-Z])\}", step):
            if s in slots and s not in order:
                order.append(s)
    rename = {old: SLOT_NAMES[i] for i, old in enumerate(order)}
    tmp = [instantiate([st], {o: "{\x00" + n + "}" for o, n in rename.items()})[0] for st in steps]
    return [st.replace("{\x00", "{") for st in tmp], [rename[o] for o in order]


def _grams(
    trajectories: Sequence[tuple[str, Sequence[Sequence[str]]]], min_len: int, max_len: int
) -> dict[tuple[str, ...], set[str]]:
    seen: dict[tuple[str, ...], set[str]] = {}
    for episode_id, segments in trajectories:
        for seg in segments:
            acts = list(seg)
            for n in range(min_len, max_len + 1):
                for i in range(len(acts) - n + 1):
                    gram = tuple(acts[i : i + n])
                    if len(set(gram)) == len(gram):
                        seen.setdefault(gram, set()).add(episode_id)
    return seen


def mine_templates(
    trajectories: Sequence[tuple[str, Sequence[Sequence[str]]]],
    min_support: int = 2,
    min_len: int = 2,
    max_len: int = 4,
    focus: str | None = None,
) -> list[MinedTemplate]:
    """Templates with at least two distinct instantiations in ``min_support`` episodes.

    ``trajectories`` are (episode id, segments of actions). With ``focus`` (an episode id),
    only pairs involving that episode's subsequences are aligned: what earlier episodes alone
    support was found when they were observed.
    """
    grams = _grams(trajectories, min_len, max_len)
    buckets: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for g in grams:
        buckets.setdefault(tuple(s.split()[0] if s.split() else "" for s in g), []).append(g)
    found: dict[tuple[str, ...], MinedTemplate] = {}
    for members in buckets.values():
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if focus is not None and focus not in grams[a] | grams[b]:
                    continue
                unified = unify(a, b)
                if unified is None or tuple(unified[0]) in found:
                    continue
                steps, slots = unified
                tpl = MinedTemplate(steps=steps, slots=slots)
                support: set[str] = set()
                for g in members:
                    values = match(steps, slots, g)
                    if values and values not in tpl.instances:
                        tpl.instances.append(values)
                    if values:
                        support |= grams[g]
                tpl.support = sorted(support)
                found[tuple(steps)] = tpl
    frequent = [
        t
        for t in found.values()
        if len(t.instances) >= 2 and len(t.support) >= min_support and slots_in(t.steps[0], t.slots)
    ]
    maximal = [
        t
        for t in frequent
        if not any(_inside(t, u) or _specializes(t, u) for u in frequent if u is not t)
    ]
    maximal.sort(key=lambda t: (-len(t.support), -len(t.steps), t.steps))
    return maximal


def _covers(general: MinedTemplate, special: MinedTemplate) -> bool:
    return len(general.steps) == len(special.steps) and all(
        matches(general.steps, general.slots, instantiate(special.steps, values))
        for values in special.instances
    )


def _specializes(t: MinedTemplate, u: MinedTemplate) -> bool:
    """``u`` is at least as general as ``t`` (covers its instances and support); of two
    that cover each other, the one with less literal text stays."""
    if not set(t.support) <= set(u.support) or not _covers(u, t):
        return False
    if not _covers(t, u):
        return True
    literal = [len(re.sub(r"\{[A-Z]\}", "", "".join(x.steps))) for x in (t, u)]
    return (literal[0], t.steps) > (literal[1], u.steps)


def _inside(small: MinedTemplate, big: MinedTemplate) -> bool:
    """``small`` is a window of the longer ``big`` with the same support."""
    n = len(small.steps)
    if len(big.steps) <= n or set(small.support) != set(big.support):
        return False
    for i in range(len(big.steps) - n + 1):
        if canonical(big.steps[i : i + n], big.slots)[0] == small.steps:
            return True
    return False
