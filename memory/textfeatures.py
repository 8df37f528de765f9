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
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import count
from typing import NamedTuple

import numpy as np

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
    def stemmed_verb(self) -> str:
        return stem(self.verb)

    @cached_property
    def mine(self) -> frozenset[str]:
        """Its words and its stemmed verb: the words a line must share to concern it."""
        return self.words | {self.stemmed_verb}


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
    views: list[ActionView] = field(default_factory=list, repr=False)
    """Each taken action as ``analyse`` saw it in the context it was taken in."""
    taken_in: list[str] = field(default_factory=list, repr=False)
    """The observation each action was taken in."""
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
    _actions: dict[str, _ActionMemo] = field(default_factory=dict, repr=False, compare=False)
    """Action -> what ``analyse`` keeps of it in this context (see ``_ActionMemo``)."""
    _by_facts: dict[tuple[str, _Facts], ActionView] = field(
        default_factory=dict, repr=False, compare=False
    )
    """``analyse``'s results by the action and its facts: one view per distinct result."""
    _scores: dict[int, float] = field(default_factory=dict, repr=False, compare=False)
    """``key`` of a view ``analyse`` returned -> its value under the weights
    ``_scored_by``."""
    _scored_by: object = field(default=None, repr=False, compare=False)
    _times_taken: Counter[str] = field(default_factory=Counter, repr=False, compare=False)
    _verb_objects: Counter[tuple[str, tuple[str, ...]]] = field(
        default_factory=Counter, repr=False, compare=False
    )
    """How often each action, and each verb on each object, was taken."""

    @property
    def signatures(self) -> list[str]:
        """Signature of each taken action, in the context it was taken in."""
        return [v.signature for v in self.views]

    def scores(self, weights: object) -> dict[int, float]:
        """The values of views already computed under ``weights`` (a value function's
        weights, fixed while it is in use), by the view's ``key``."""
        if self._scored_by is not weights:
            self._scores, self._scored_by = {}, weights
        return self._scores

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
        self, action: str, answer: str, reward: float, view: ActionView | None = None
    ) -> None:
        """Record that ``action`` was taken and answered with ``answer`` (``view``: the
        action's ``analyse`` in this context, when the caller has it already)."""
        self.views.append(analyse(self, action) if view is None else view)
        self.taken_in.append(self.observation)
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


_VIEW_KEYS = count()


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
    key: int = field(default_factory=_VIEW_KEYS.__next__, compare=False, repr=False)
    """Names this view object, for tables of values computed per view
    (``EpisodeText.scores``). Not ``id()``: a Python audit hook (filelock installs two)
    runs on every call of it, which made it cost 0.15 µs instead of 0.02."""
    index: np.ndarray = field(init=False, compare=False, repr=False)
    """``features`` as an array, made once per view: scoring gathers the weights of new
    views' features by concatenating these (turning ~500 Python ints into an array each
    step took about as long as the rest of the scoring)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", np.array(self.features, dtype=np.intp))


def action_features(ctx: EpisodeText, action: str) -> list[int]:
    """Sorted hashed feature indices (binary features) of ``action`` in context ``ctx``."""
    return analyse(ctx, action).features


def analyse(ctx: EpisodeText, action: str) -> ActionView:
    """The features and the signature of ``action`` in context ``ctx``.

    Remembered in ``ctx`` (``_ActionMemo``) with the key it was made under: everything in
    the context the result depends on, that is the action's object in the current
    observation, the lines sharing a word with the action (lines are only ever added, so
    their number says which), the rewarded answers (their number, likewise), and how often
    the action and its verb on its object were taken. About half the admissible actions of
    a step are asked under the same key as at the step before: they get the same view.

    When the key has changed, what the action's lines say (``_LineSummary``) is extended with
    the lines added since it was last asked, not rebuilt, and the features are made only
    when those facts (``_Facts``) are new for the action: otherwise the view made for the
    same facts before, in this episode or an earlier one, is returned. Every view is the
    one analysing from scratch (``_analyse``) would make."""
    memo = ctx._actions.get(action)
    if memo is None:
        memo = ctx._actions[action] = _ActionMemo(parse_action(action))
    act = memo.act
    # Called for every admissible action of every step: plain lookups (a Counter's missing
    # key costs a Python call) and a loop instead of a generator.
    repeats = ctx._times_taken.get(action, 0)
    repeats = repeats if repeats < 2 else 2
    same_vo = ctx._verb_objects.get(memo.verb_object, 0)
    same_vo = same_vo if same_vo < 2 else 2
    obj = act.object_words
    by_word = ctx.by_word
    lines = 0
    for w in act.mine:
        at = by_word.get(w)
        if at is not None:
            lines += len(at)
    in_current = bool(obj) and obj <= ctx.observation_words
    rewarded = len(ctx.rewarded)
    view = memo.view
    if (
        view is not None
        and memo.lines == lines
        and memo.in_current is in_current
        and memo.rewarded == rewarded
        and memo.repeats == repeats
        and memo.same_vo == same_vo
    ):
        return view
    summary = memo.summary
    if summary is None or summary.rewarded != rewarded:
        summary = memo.summary = _LineSummary(rewarded)
    summary.extend(ctx, act)
    # New lines seldom change the facts: then the view made before is the answer (in this
    # episode, the very object whose value ``ValueSnapshot.assess`` remembers).
    facts = (action, _facts(ctx, act, summary, repeats, same_vo))
    view = ctx._by_facts.get(facts)
    if view is None:
        view = ctx._by_facts[facts] = _known_view(*facts)
    memo.view, memo.lines, memo.in_current = view, lines, in_current
    memo.rewarded, memo.repeats, memo.same_vo = rewarded, repeats, same_vo
    return view


class _ActionMemo:
    """What ``analyse`` keeps of one action in one context: its parse, what the context's
    lines say about it (extended as lines are added), and the key it was last asked under
    with the view it got. The key holds everything the view depends on, and only grows
    (lines and rewarded answers are only added, repeats only counted) but for the object
    leaving or entering the observation, so the last key is the one a step asks again."""

    __slots__ = (
        *("act", "verb_object", "summary", "view"),
        *("lines", "in_current", "rewarded", "repeats", "same_vo"),
    )

    def __init__(self, act: ParsedAction) -> None:
        self.act = act
        self.verb_object = (act.verb, act.obj)
        self.summary: _LineSummary | None = None
        self.view: ActionView | None = None
        self.lines = self.rewarded = self.repeats = self.same_vo = -1
        self.in_current = False


def _analyse(ctx: EpisodeText, act: ParsedAction, repeats: int, same_vo: int) -> ActionView:
    """``analyse`` from scratch: every line of the episode taken into account at once."""
    summary = _LineSummary(len(ctx.rewarded))
    summary.extend(ctx, act)
    return _view(act, _facts(ctx, act, summary, repeats, same_vo))


@dataclass
class _LineSummary:
    """What the lines sharing a word with one action say about it, over the paragraphs
    taken into account so far (``done``). Every part is a count, a flag, a maximum, a
    minimum or a union over lines, so lines added later extend it without a rescan; only
    a new rewarded answer (which changes which lines are answered) starts it again."""

    rewarded: int
    """The number of rewarded answers it holds for."""
    done: int = 0
    n_lines: int = 0
    """Lines holding all of the action's object words."""
    whole: bool = False
    """Some line is the object alone."""
    best: float = 0.0
    """The largest share of a line's words that the action's words cover."""
    open_before: int | None = None
    """The fewest open lines before a line the action covers completely."""
    verb_object: bool = False
    verb_object_open: bool = False
    pairs: set[tuple[str, str]] = field(default_factory=set)
    source: tuple[int, int] | None = None
    """(words, -origin) of the best instruction line this action carries out."""
    _frozen: frozenset[tuple[str, str]] = frozenset()

    def frozen_pairs(self) -> frozenset[tuple[str, str]]:
        """``pairs`` as a frozenset, made again only when it has grown (it only grows)."""
        if len(self._frozen) != len(self.pairs):
            self._frozen = frozenset(self.pairs)
        return self._frozen

    def extend(self, ctx: EpisodeText, act: ParsedAction) -> None:
        """Take the paragraphs added since the last call into account."""
        since = self.done
        self.done = len(ctx.paragraphs)
        if since == self.done:
            return
        # Only lines sharing a word with the action matter: any other covers none of it and
        # cannot hold its object. Each word's lines are listed in the order they were seen.
        near: set[tuple[int, int]] = set()
        for w in act.mine:
            at = ctx.by_word.get(w)
            if at:
                near.update(at[bisect_left(at, (since, -1)) :] if since else at)
        obj, mine, stemmed_verb = act.object_words, act.mine, act.stemmed_verb
        # The order of the lines changes none of the results.
        for p, i in near:
            line = ctx.paragraphs[p][i]
            if obj and obj <= line:
                self.n_lines += 1
                self.whole = self.whole or line == obj
                if len(line) <= len(obj) + 2:
                    self.pairs.update((u, w) for u in line - obj for w in (act.verb, *act.tool))
                if stemmed_verb in line:
                    self.verb_object = True
                    self.verb_object_open = self.verb_object_open or not ctx.line_state(p, i)[0]
            cover = len(line & mine) / len(line)
            self.best = max(self.best, cover)
            if cover == 1.0:
                origin = ctx.origins.get(line, -1)
                if len(line) >= 2 and origin >= 0:
                    self.source = max(self.source or (0, 0), (len(line), -origin))
                still_open = ctx.line_state(p, i)[1]
                if self.open_before is None or still_open < self.open_before:
                    self.open_before = still_open


class _Facts(NamedTuple):
    """Everything about an action in one context that its features and signature depend
    on: two contexts that agree on these give the action the same ``ActionView``."""

    in_current: bool | None
    """Its object is in the current observation (``None``: it has no object)."""
    in_task: bool
    n_lines: int
    whole: bool
    cover: int
    open_before: int
    repeats: int
    same_vo: int
    verb_object: bool
    verb_object_open: bool
    pairs: frozenset[tuple[str, str]]
    source: tuple[int, int] | None


def _facts(
    ctx: EpisodeText, act: ParsedAction, lines: _LineSummary, repeats: int, same_vo: int
) -> _Facts:
    obj = act.object_words
    return _Facts(
        obj <= ctx.observation_words if obj else None,
        bool(obj) and obj <= ctx.task_words,
        min(lines.n_lines, 4),
        lines.whole,
        _bucket(lines.best, (0.34, 0.5, 0.67, 0.99)),
        -1 if lines.open_before is None else min(lines.open_before, 3),
        repeats,
        same_vo,
        lines.verb_object,
        lines.verb_object_open,
        lines.frozen_pairs(),
        lines.source,
    )


@lru_cache(maxsize=8192)
def _known_view(action: str, f: _Facts) -> ActionView:
    """``_view``, remembered across episodes: actions and facts recur from game to game."""
    return _view(parse_action(action), f)


def _view(act: ParsedAction, f: _Facts) -> ActionView:
    """The action's features and signature from its facts."""
    verb = act.verb
    hashed = set(act.own_features)
    hashed.update(_hash(("pair", u, w)) for u, w in f.pairs)
    hashed.update(
        _generic(
            verb,
            f.in_current,
            f.in_task,
            f.n_lines,
            f.whole,
            f.cover,
            f.open_before,
            f.repeats,
            f.same_vo,
            f.verb_object,
            f.verb_object_open,
        )
    )
    signature = "|".join(
        map(str, (verb, f.cover, f.open_before, int(f.verb_object_open), int(f.in_task), f.repeats))
    )
    return ActionView(sorted(hashed), signature, None if f.source is None else -f.source[1])


@lru_cache(maxsize=65536)
def _generic(
    verb: str,
    in_current: bool | None,
    in_task: bool,
    n_lines: int,
    whole: bool,
    cover_b: int,
    open_b: int,
    repeats: int,
    same_vo: int,
    verb_object: bool,
    verb_object_open: bool,
) -> frozenset[int]:
    """The indices of the generic (word-free) features, copies included (``in_current``:
    ``None`` for an action without an object, which has neither object feature)."""
    generic: list[tuple[object, ...]] = []
    if in_current is not None:
        generic.append(("obj_in_current", verb, in_current))
        generic.append(("obj_in_task", verb, in_task))
    generic += [
        ("lines", verb, n_lines),
        ("lines", n_lines),
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
    return frozenset(i for g in generic for i in _copies(g))


@lru_cache(maxsize=65536)
def _copies(generic: tuple[object, ...]) -> tuple[int, ...]:
    """The indices of a generic feature and of its copies (``_GENERIC_COPIES`` in all)."""
    return (_hash(generic), *(_hash((*generic, "copy", k)) for k in range(_GENERIC_COPIES - 1)))
