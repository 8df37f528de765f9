"""Generic features of an action relative to the text an episode has shown so far.

A step memory keyed by the state's text only helps in a state seen before. These features
describe an action by how it relates to the episode's text instead, so a value learned in
one game carries over to another game of the same family:

* the action's verb and words (``take``, ``knife``): what kind of action it is;
* where its object occurs: in the current observation, in the task, in how many earlier
  lines, and whether some line consists of the object alone (a list entry);
* how completely some earlier line covers the action's words (an instruction it carries out),
  and how many lines before that one, in the same paragraph, no rewarded answer has covered
  yet (instructions still open ahead of it);
* word pairs between a short line that names the object and the action's verb and tool
  (a line "roast the X" with the action "cook X with oven");
* whether a line names both the action's verb and its object (an instruction naming this
  very move), and whether a rewarded answer has covered that line yet;
* how often the action, or the same verb on the same object, was taken already.

``analyse`` also gives the action a coarse *signature* (verb plus bucketed relations), which
exploration counts across episodes to prefer kinds of moves rarely tried.

Nothing here knows a particular environment: words are compared after a crude English
stemming, lines are split on newlines and sentence ends, and every feature is hashed into a
fixed-size index space. The generic (word-free) features are repeated under a few hashes so
that a ridge fit weighs them more than any single word.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

DIM = 1 << 18
"""Size of the hashed feature space."""

_STOP = frozenset(
    {
        *("the", "a", "an", "of", "to", "and", "is", "you", "it", "your", "that", "this"),
        *("there", "are", "be", "in", "on", "with", "from", "into", "at", "for", "can", "see"),
    }
)
_PREPOSITIONS = frozenset({"with", "from", "on", "in", "into", "to", "at"})
_GENERIC_COPIES = 4
_LINE_SPLIT = re.compile(r"\n|(?<=[.!?])\s+")
_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Crude English stem: ``roasted``/``roast``, ``fried``/``fry``, ``sliced``/``slice``
    and ``chopped``/``chop`` map to the same string."""
    w = word
    if len(w) > 4 and w.endswith("ied"):
        w = w[:-3] + "i"
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
        if len(w) > 2 and w[-1] == w[-2]:
            w = w[:-1]
    elif len(w) > 4 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    if w.endswith("y"):
        w = w[:-1] + "i"
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def tokens(text: str) -> list[str]:
    """Stemmed content words of ``text``, in order."""
    return [stem(w) for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOP]


def lines(text: str) -> list[frozenset[str]]:
    """The non-empty lines (and sentences) of ``text`` as sets of content words."""
    out = []
    for raw in _LINE_SPLIT.split(text):
        words = frozenset(tokens(raw))
        if words:
            out.append(words)
    return out


@dataclass(frozen=True)
class ParsedAction:
    verb: str
    obj: tuple[str, ...]
    """Stemmed content words between the verb and the first preposition."""
    tool: tuple[str, ...]
    """Stemmed content words after it."""

    @property
    def words(self) -> frozenset[str]:
        return frozenset(self.obj) | frozenset(self.tool)

    @cached_property
    def object_words(self) -> frozenset[str]:
        return frozenset(self.obj)

    @cached_property
    def own_features(self) -> tuple[int, ...]:
        """The hashed features it has in any context: bias, verb, verb with each word,
        verb with each tool word."""
        v = self.verb
        feats = [("bias",), ("v", v), *(("vw", v, w) for w in self.words)]
        feats += [("vt", v, w) for w in self.tool]
        return tuple(_hash(f) for f in feats)

    @cached_property
    def mine(self) -> frozenset[str]:
        """Its words and its stemmed verb: the words a line must share to concern it."""
        return self.words | {stem(self.verb)}


@lru_cache(maxsize=65536)
def parse_action(action: str) -> ParsedAction:
    words = re.findall(r"[a-z]+", action.lower())
    obj: list[str] = []
    tool: list[str] = []
    in_tool = False
    for w in words[1:]:
        if w in _PREPOSITIONS:
            in_tool = True
        elif w not in _STOP:
            (tool if in_tool else obj).append(stem(w))
    return ParsedAction(words[0] if words else "", tuple(obj), tuple(tool))


@dataclass
class EpisodeText:
    """What an episode has shown so far, in the form the features need."""

    task: str
    observation: str
    """The current observation."""
    paragraphs: list[list[frozenset[str]]] = field(default_factory=list)
    taken: list[str] = field(default_factory=list)
    rewarded: list[frozenset[str]] = field(default_factory=list)
    """Words of each answer that came with a reward."""
    signatures: list[str] = field(default_factory=list)
    """Signature of each taken action, in the context it was taken in."""
    discovered: list[int] = field(default_factory=list)
    """For each taken action: how many content words its answer showed that neither the
    task nor any earlier text of the episode had shown (what the move revealed)."""
    origins: dict[frozenset[str], int] = field(default_factory=dict)
    """Each line seen so far -> the step whose answer first showed it (-1: the first
    observation)."""
    task_words: frozenset[str] = frozenset()
    observation_words: frozenset[str] = frozenset()
    """Content words of ``task`` and ``observation``, computed once, not per action."""
    by_word: dict[str, list[tuple[int, int]]] = field(default_factory=dict, repr=False)
    """Word -> (paragraph, line) of every line holding it: ``analyse`` looks only at the
    lines that share a word with the action (any other line's coverage is 0)."""
    _open: dict[tuple[int, int], tuple[bool, int]] = field(default_factory=dict, repr=False)
    """(paragraph, line) -> whether a rewarded answer covered the line, and how many
    earlier lines of its paragraph (of two words or more) none has; valid while
    ``_open_for`` equals the number of rewarded answers."""
    _open_for: int = field(default=0, repr=False)
    _views: dict[tuple[object, ...], ActionView] = field(
        default_factory=dict, repr=False, compare=False
    )
    """``analyse``'s results, keyed by the action and every part of the context they depend
    on (see ``analyse``)."""
    _times_taken: Counter[str] = field(default_factory=Counter, repr=False, compare=False)
    _verb_objects: Counter[tuple[str, tuple[str, ...]]] = field(
        default_factory=Counter, repr=False, compare=False
    )
    """How often each action, and each verb on each object, was taken."""

    @classmethod
    def start(cls, task: str, first_observation: str) -> EpisodeText:
        ctx = cls(task=task, observation=first_observation, task_words=frozenset(tokens(task)))
        ctx._see(first_observation)
        return ctx

    def _see(self, text: str) -> int:
        """Take ``text`` as the current observation; the number of its content words new to
        the episode."""
        self.observation = text
        self.observation_words = frozenset(tokens(text))
        new = len(self.observation_words - self.task_words - self.by_word.keys())
        step = len(self.taken) - 1
        for para in _PARAGRAPH_SPLIT.split(text):
            found = lines(para)
            if found:
                p = len(self.paragraphs)
                self.paragraphs.append(found)
                for i, line in enumerate(found):
                    self.origins.setdefault(line, step)
                    for word in line:
                        self.by_word.setdefault(word, []).append((p, i))
        return new

    def answered(self, line: frozenset[str]) -> bool:
        """Whether a rewarded answer covered ``line`` (an instruction carried out)."""
        return any(line <= r for r in self.rewarded)

    def line_state(self, p: int, i: int) -> tuple[bool, int]:
        """Line ``i`` of paragraph ``p``: whether it was answered (``answered``), and how
        many earlier lines of its paragraph, of two words or more, are not."""
        if self._open_for != len(self.rewarded):
            self._open, self._open_for = {}, len(self.rewarded)
        got = self._open.get((p, i))
        if got is None:
            paragraph = self.paragraphs[p]
            still_open = sum(
                1 for prev in paragraph[:i] if len(prev) >= 2 and not self.answered(prev)
            )
            got = self._open[(p, i)] = (self.answered(paragraph[i]), still_open)
        return got

    def observe(
        self, action: str, answer: str, reward: float, signature: str | None = None
    ) -> None:
        """Record that ``action`` was taken and answered with ``answer`` (``signature``: the
        action's in this context, when the caller has analysed it already)."""
        self.signatures.append(analyse(self, action).signature if signature is None else signature)
        self.taken.append(action)
        self._times_taken[action] += 1
        act = parse_action(action)
        self._verb_objects[act.verb, act.obj] += 1
        self.discovered.append(self._see(answer))
        if reward > 0:
            self.rewarded.append(self.observation_words)


def _bucket(x: float, cuts: Sequence[float]) -> int:
    return sum(x >= c for c in cuts)


@lru_cache(maxsize=262144)
def _hash(parts: tuple[object, ...]) -> int:
    """The feature index of ``parts``. Cached: features repeat across actions and steps.
    (A cache keyed by tuples would take ``(x, True)`` for ``(x, 1)``; no feature kind mixes
    a flag and a number in one place, which ``test_feature_hash_cache_is_exact`` checks.)"""
    return zlib.crc32("|".join(map(str, parts)).encode()) % DIM


@dataclass(frozen=True)
class ActionView:
    """An action as the step-value function sees it in one context."""

    features: list[int]
    """Sorted hashed feature indices (binary features)."""
    signature: str
    """The action's verb with its coarse relation to the text (how well a line covers it,
    open instructions before that line, whether an open line names its verb and object, its
    object in the task, repeats): what exploration counts to find untried kinds of moves."""
    source: int | None = None
    """The step whose answer first showed the line this action carries out (the longest
    line of two or more words that its words cover completely), if a step showed one: the
    move that revealed the instruction. ``None`` when no such line exists or the first
    observation showed it."""


def action_features(ctx: EpisodeText, action: str) -> list[int]:
    """Sorted hashed feature indices (binary features) of ``action`` in context ``ctx``."""
    return analyse(ctx, action).features


def analyse(ctx: EpisodeText, action: str) -> ActionView:
    """The features and the signature of ``action`` in context ``ctx``.

    Remembered in ``ctx`` under a key made of everything in the context the result depends
    on: the action's object in the current observation, the lines sharing a word with the
    action (lines are only ever added, so their number says which), the rewarded answers
    (their number, likewise), and how often the action and its verb on its object were
    taken. Most admissible actions keep their key from one step to the next."""
    act = parse_action(action)
    repeats = min(ctx._times_taken[action], 2)
    same_vo = min(ctx._verb_objects[act.verb, act.obj], 2)
    obj = act.object_words
    key = (
        action,
        bool(obj) and obj <= ctx.observation_words,
        sum(len(ctx.by_word.get(w, ())) for w in act.mine),
        len(ctx.rewarded),
        repeats,
        same_vo,
    )
    view = ctx._views.get(key)
    if view is None:
        view = ctx._views[key] = _analyse(ctx, act, repeats, same_vo)
    return view


def _analyse(ctx: EpisodeText, act: ParsedAction, repeats: int, same_vo: int) -> ActionView:
    verb, obj = act.verb, act.object_words
    in_task = bool(obj) and obj <= ctx.task_words
    generic: list[tuple[object, ...]] = []
    if obj:
        generic.append(("obj_in_current", verb, obj <= ctx.observation_words))
        generic.append(("obj_in_task", verb, in_task))
    n_lines = 0
    whole = False
    best = 0.0
    open_before: int | None = None
    verb_object = verb_object_open = False
    pairs: set[tuple[str, str]] = set()
    source: tuple[int, int] | None = None
    """(words, -origin) of the best instruction line this action carries out."""
    stemmed_verb = stem(verb)
    mine = act.mine
    # Only lines sharing a word with the action matter: any other covers none of it and
    # cannot hold its object. The order of the lines changes none of the results.
    near = {at for w in mine for at in ctx.by_word.get(w, ())}
    for p, i in near:
        line = ctx.paragraphs[p][i]
        if obj and obj <= line:
            n_lines += 1
            whole = whole or line == obj
            if len(line) <= len(obj) + 2:
                pairs.update((u, w) for u in line - obj for w in (verb, *act.tool))
            if stemmed_verb in line:
                verb_object = True
                verb_object_open = verb_object_open or not ctx.line_state(p, i)[0]
        cover = len(line & mine) / len(line)
        best = max(best, cover)
        if cover == 1.0:
            origin = ctx.origins.get(line, -1)
            if len(line) >= 2 and origin >= 0:
                source = max(source or (0, 0), (len(line), -origin))
            still_open = ctx.line_state(p, i)[1]
            open_before = still_open if open_before is None else min(open_before, still_open)
    cover_b = _bucket(best, (0.34, 0.5, 0.67, 0.99))
    open_b = -1 if open_before is None else min(open_before, 3)
    generic += [
        ("lines", verb, min(n_lines, 4)),
        ("lines", min(n_lines, 4)),
        ("whole", verb, whole),
        ("whole", whole),
        ("cover", verb, cover_b),
        ("cover", cover_b),
        ("open_before", verb, open_b),
        ("cover_open", cover_b, open_b),
        ("again", verb, repeats),
        ("again_vo", verb, same_vo),
        ("verb_object", verb_object),
        ("verb_object_open", verb_object_open),
        ("verb_object", verb, verb_object),
    ]
    hashed = set(act.own_features)
    hashed.update(_hash(("pair", u, w)) for u, w in pairs)
    for g in generic:
        hashed.update(_copies(g))
    signature = "|".join(
        map(str, (verb, cover_b, open_b, int(verb_object_open), int(in_task), repeats))
    )
    return ActionView(sorted(hashed), signature, None if source is None else -source[1])


@lru_cache(maxsize=65536)
def _copies(generic: tuple[object, ...]) -> tuple[int, ...]:
    """The indices of a generic feature and of its copies (``_GENERIC_COPIES`` in all)."""
    return (_hash(generic), *(_hash((*generic, "copy", k)) for k in range(_GENERIC_COPIES - 1)))
