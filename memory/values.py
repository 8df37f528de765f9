"""Step values that carry over to new games: a linear function of generic text features.

The ``action`` memory remembers values per (state, action) and helps only in states it has
seen. This kind stores every step of every finished episode, in one record per episode
(``StoredStep``: the action, the hashed features of the action in its context from
``memory.textfeatures``, its signature, the step's return: discounted reward plus a
terminal bonus or penalty, and its immediate outcome: the step's own reward, plus the bonus
or penalty when it won or lost the game).
Two ridge regressions over all stored steps map features to the return and to the immediate
outcome; an action's value is their weighted sum. The immediate model learns from a clean
signal (what this very step earned or cost), the return model credits steps that enable
later rewards. A step that revealed an instruction (a line of text that a later rewarded
action carried out word for word, e.g. reading a recipe) is credited that later reward as
its own (``instruction_credit``): without it, a move that only gathers information earns
nothing until the policy already follows what it revealed. Likewise a rewarded step credits
the step that made its action possible (``enabler_credit``): the move after which the
action became admissible, such as taking the tool that the action names. And a step earns a
little for what it revealed (``discovery``: content words its answer showed that the episode
had not shown yet), so moves that gather information, like reading a recipe, are made and
followed early, before anything they lead to has been rewarded. The fitted weights
are derived state: they are refitted whenever the set of records changes, so deleting an
episode's record (``evolvent memory delete``) removes what it taught.

Acting on the values: an episode acts on a ``snapshot()`` of them, which learning after it
does not change. ``propose`` ranks the admissible actions of a state; while learning,
``explore_choice`` adds a bonus to actions not yet taken in the episode and a bonus to
actions whose signature the records (the episode learned last counted once more) and this
episode rarely hold (count-based exploration over kinds of moves), values a kind of move
never tried at least ``untried_floor`` (optimistic: what the fit says of it is borrowed from
other kinds, such as a losing "eat" of one object for every "eat"), and, with a probability
that falls as episodes accumulate, picks an untaken action at random.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import accumulate
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from memory.actions import ActionProposal, discounted_returns
from memory.base import VectorBackend
from memory.embeddings import Embedder
from memory.fitworker import FitWorker, FitWorkerError
from memory.records import MemoryRecord, Provenance, new_id
from memory.ridge import NO_START, Solved, Start, combine, ridge_solve
from memory.textfeatures import EpisodeText, analyse

log = logging.getLogger(__name__)

FIT_PROCESS_AFTER_S = 0.001
"""A ``fit_process`` value function moves its fits to a worker process once a fit in this
process has taken longer than this (and it learns again): short runs and small stores,
whose fits cost less than starting a process, never start one."""


class ValueParams(BaseModel):
    """How the value function is learned and explored."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    gamma: float = Field(default=0.9, ge=0, le=1)
    """Discount of later rewards in a step's return."""
    win_bonus: float = 1.0
    """Added to the last reward of a won episode."""
    loss_penalty: float = -1.0
    """Added to the last reward of a lost episode."""
    unfinished_penalty: float = -0.5
    """Added to the last reward of an episode that ran out of steps."""
    instruction_credit: float = Field(default=1.0, ge=0)
    """A rewarded step's reward, times this, is also credited to the step that revealed the
    instruction it carried out (``ValueStep.source``): reading a recipe earns what following
    it earns, however many steps later."""
    enabler_credit: float = Field(default=0.5, ge=0)
    """A rewarded step's reward, times this, is also credited to the step that made its
    action admissible (``ValueStep.enabler``): a move that only opens the way to a reward
    (taking a tool, opening a container) earns what that reward earns."""
    discovery_reward: float = Field(default=0.2, ge=0)
    """Curiosity: a step whose answer shows ``discovery_words`` content words that the
    episode had not shown yet (reading a recipe, opening a container) earns this much on top
    of its reward, less for fewer words, in what the values learn. Scores and outcomes are
    the environment's; 0: off."""
    discovery_words: int = Field(default=10, ge=1)
    """New words that earn the whole ``discovery_reward``."""
    ridge: float = Field(default=1.0, gt=0)
    """L2 penalty of the fit."""
    fit_iterations: int = Field(default=60, ge=1)
    """Conjugate-gradient iterations per fit (warm-started from the last weights)."""
    min_episodes: int = Field(default=1, ge=1)
    """Episodes learned before the values propose anything."""
    immediate_weight: float = Field(default=1.0, ge=0)
    """Weight of the immediate-outcome model in an action's value (the return model's is 1)."""
    novelty_bonus: float = Field(default=0.5, ge=0)
    """While learning: added to the value of actions not yet taken in this episode."""
    untried_floor: float | None = 0.0
    """While learning: the least value of an action whose signature no record, the episode
    learned last, nor this episode holds (optimism for a kind of move never tried: its
    value is an extrapolation from other kinds, e.g. every "eat" after the losing ones).
    ``None``: no floor."""
    coverage_bonus: float = Field(default=1.0, ge=0)
    """While learning: ``coverage_bonus / sqrt(1 + n)`` is added to an action whose
    signature ``n`` steps share: the recorded steps, those of the episode learned last once
    more (so the next episode varies from it), and this episode's steps."""
    epsilon: float = Field(default=0.25, ge=0, le=1)
    """While learning: chance of a random not-yet-taken action, at the first episode."""
    epsilon_decay: float = Field(default=0.99, gt=0, le=1)
    """Factor applied to ``epsilon`` per learned episode."""
    epsilon_min: float = Field(default=0.1, ge=0, le=1)


class ValueStep(BaseModel):
    """One step of a finished episode as the value function learns from it."""

    state: str
    """A short description of the state (its observation), for inspection and search."""
    action: str
    reward: float
    features: list[int]
    signature: str = ""
    """The action's signature in its context (``memory.textfeatures.ActionView``)."""
    source: int | None = None
    """Index (in the episode's steps) of the step that revealed the instruction this step
    carried out (``memory.textfeatures.ActionView.source``)."""
    enabler: int | None = None
    """Index (in the episode's steps) of the step after which this step's action became
    admissible, the last time it did (``enablers``); None when it was admissible from the
    episode's start or the environment lists no admissible actions."""
    discovered: int = 0
    """Content words its answer showed that the episode had not shown before
    (``EpisodeText.discovered``): what the step earns by ``discovery_reward``."""


class StoredStep(BaseModel):
    """One step as a value record stores it (``stored_steps``): what the fit needs, and
    what it was computed from, for inspection."""

    step: int
    """Its index among the episode's steps."""
    state: str
    action: str
    reward: float
    """The environment's reward."""
    discovery: float = 0.0
    """What it earned for the words its answer showed first (``discovery_reward``)."""
    credit: float = 0.0
    """What it was credited for the instruction it revealed and the action it enabled."""
    immediate: float
    """Its immediate outcome, the immediate model's target."""
    signature: str = ""
    features: list[int]
    """Stored as one string of numbers ("73 1489 9739"): a record stays readable in
    ``evolvent memory show``."""
    q: float
    """Its return, the return model's target."""

    @field_validator("features", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        return [int(x) for x in v.split()] if isinstance(v, str) else v

    @field_serializer("features")
    def _join(self, v: list[int]) -> str:
        return " ".join(map(str, v))


class Assessment(NamedTuple):
    """The admissible actions of a state as the value function sees them."""

    values: list[float]
    signatures: list[str]


class _Row(NamedTuple):
    """One record as the fit uses it."""

    features: np.ndarray
    target: float
    """The step's return."""
    immediate: float
    """The step's immediate outcome."""
    episode: str
    signature: str


class ValueFunction:
    """Records of (features, return) in one collection, and the ridge fit over them."""

    def __init__(
        self,
        backend: VectorBackend,
        embedder: Embedder,
        collection: str,
        params: ValueParams | None = None,
        *,
        fit_process: bool = False,
    ) -> None:
        """``fit_process``: once fits become costly (``FIT_PROCESS_AFTER_S``), refit in a
        worker process right after each episode is learned (``memory/fitworker.py``), so
        that the next read finds the fit done or under way; same weights, bit for bit.
        Only where this process may run on two or more cores."""
        self.backend = backend
        self.embedder = embedder
        self.collection = collection
        self.params = params or ValueParams()
        self.fit_process = fit_process and _cores() >= 2
        # The fit's sparse matrices: imported (~0.13 s) when the store opens, not in the
        # middle of the first episode that reads the values.
        import scipy.sparse  # noqa: F401

        self._lock = threading.Lock()
        self._data: dict[str, list[_Row]] = {}
        """Record id -> what the fit needs of its steps, mirroring the collection."""
        # Replaced, never changed in place, once a snapshot may hold them (copy on write).
        self._signatures: Counter[str] = Counter()
        self._recent: Counter[str] = Counter()
        """Signatures of the episode learned last, which exploration counts once more."""
        self._episodes: set[str] = set()
        """Distinct episodes the records come from."""
        self._fitted = False
        self._combined: tuple[float, np.ndarray] | None = None
        """``immediate_weight`` and the weights combined with it, since the last fit."""
        self._fit_weights: list[Start] = [NO_START, NO_START]
        """The fitted weights of the return and the immediate model, in compact form: what
        the snapshots combine, and the next fit's starting weights (here or in a worker)."""
        self._generation = 0
        """Counts the changes of ``_data``: names the rows a worker's solve was asked on."""
        self._learned = 0
        self._last_fit_s = 0.0
        """How long the last fit in this process took."""
        self._worker: FitWorker | None = None
        self._worker_asked: tuple[int, float, int, int] | None = None
        """The generation, ridge, iterations and targets of the solve asked of the worker."""

    # -- learning -------------------------------------------------------------------

    def learn(
        self,
        steps: Sequence[ValueStep],
        won: bool,
        lost: bool,
        provenance: Provenance | None = None,
    ) -> list[str]:
        """Store the steps of a finished episode; returns the record ids. The values are
        refitted to them when next read."""
        if not steps:
            return []
        p = self.params
        found = [discovery(s.discovered, p) for s in steps]
        earned = [s.reward + d for s, d in zip(steps, found, strict=True)]
        credit = [
            a + b
            for a, b in zip(
                instruction_credit(steps, p.instruction_credit, earned),
                enabler_credit(steps, p.enabler_credit, earned),
                strict=True,
            )
        ]
        rewards = [e + c for e, c in zip(earned, credit, strict=True)]
        immediate = list(rewards)
        rewards[-1] += p.win_bonus if won else (p.loss_penalty if lost else p.unfinished_penalty)
        # Running out of steps is not the last step's doing; winning or losing is.
        immediate[-1] += p.win_bonus if won else (p.loss_penalty if lost else 0.0)
        returns = discounted_returns(rewards, p.gamma)
        prov = provenance or Provenance()
        prov.outcome = "success" if won else "failure"
        stored = [
            StoredStep(
                step=i,
                state=step.state,
                action=step.action,
                reward=step.reward,
                discovery=d,
                credit=c,
                immediate=now,
                signature=step.signature,
                features=list(step.features),
                q=g,
            )
            for i, (step, g, now, c, d) in enumerate(
                zip(steps, returns, immediate, credit, found, strict=True)
            )
        ]
        # One record per episode, holding all its steps: a Chroma add costs about 0.5 ms a
        # record on top of a fixed ~4 ms, and a record per step made the collection, and
        # with it every add, grow twenty times faster than the episodes.
        record = MemoryRecord(
            id=new_id("val"),
            kind="value",
            key=steps[0].state,
            text="; ".join(s.action for s in steps),
            q=returns[0],
            uses=1,
            successes=int(won),
            failures=int(not won),
            provenance=prov.model_copy(),
            meta={"steps": [s.model_dump() for s in stored]},
        )
        vectors = self.embedder.embed([record.key])
        with self._lock:
            self._sync()  # before adding: the mirror then lacks exactly this record
            self.backend.add(self.collection, [record], vectors)
            self._signatures, self._episodes = Counter(self._signatures), set(self._episodes)
            self._add_rows(record.id, _rows(record, stored))
            self._recent = Counter(s.signature for s in steps if s.signature)
            self._learned += 1
            self._fit_ahead()
            # Refitted when the values are next read (``snapshot``), not here: episodes
            # learned one after another with no read between them (a batch's deferred
            # learning) cost one fit, not one each. With a read after every episode, the
            # fits are the same as refitting here.
            self._fitted, self._combined = False, None
        return [record.id]

    def _sync(self) -> None:
        """Reload the mirror when the collection changed behind it (deletes, imports,
        other processes sharing a Chroma server)."""
        if len(self._data) != self.backend.count(self.collection):
            self._data, self._signatures, self._recent = {}, Counter(), Counter()
            self._episodes = set()
            self._tell_worker(lambda w: w.clear())
            for rec in self.backend.scan(self.collection):
                self._add_rows(rec.id, _rows(rec))
            self._fitted = False

    def _add_rows(self, record_id: str, rows: list[_Row]) -> None:
        self._data[record_id] = rows
        self._generation += 1
        self._tell_worker(partial(_send_rows, record_id=record_id, rows=rows))
        for row in rows:
            self._episodes.add(row.episode)
            if row.signature:
                self._signatures[row.signature] += 1

    def _fit(self) -> None:
        rows = [row for rows in self._data.values() for row in rows]
        if not rows:
            self._fit_weights = [NO_START, NO_START]
            self._fitted, self._combined = True, None
            return
        p = self.params
        models = 2 if p.immediate_weight > 0 else 1
        solved = self._worker_solve()
        if solved is None:
            began = time.perf_counter()
            feats = [r.features for r in rows]
            targets = [np.array([r.target for r in rows])]
            if models == 2:
                targets.append(np.array([r.immediate for r in rows]))
            starts = self._fit_weights[:models]
            solved = ridge_solve(feats, targets, p.ridge, p.fit_iterations, starts)
            self._last_fit_s = time.perf_counter() - began
        for i in range(models):
            self._fit_weights[i] = (solved.active, solved.weights[i])
        self._fitted, self._combined = True, None

    # -- the fit in a worker process ------------------------------------------------

    def _solve_key(self) -> tuple[int, float, int, int]:
        p = self.params
        return (self._generation, p.ridge, p.fit_iterations, 2 if p.immediate_weight > 0 else 1)

    def _fit_ahead(self) -> None:
        """After learning: ask the worker (started here once fits are costly and this
        process keeps learning) for the fit the next read needs."""
        if self._worker is None:
            if not (
                self.fit_process and self._learned >= 2 and self._last_fit_s > FIT_PROCESS_AFTER_S
            ):
                return
            self._start_worker()
        key = self._solve_key()
        starts = self._fit_weights[: key[3]]
        if self._tell_worker(lambda w: w.fit(key[0], key[1], key[2], starts)):
            self._worker_asked = key

    def _worker_solve(self) -> Solved | None:
        """The worker's solve for the rows and parameters as they stand, when it was asked
        for one and is done; ``None``: fit here. A solve still running is not waited for:
        the worker runs on idle CPU time only, which a busy machine (concurrent episodes)
        may not have, and a fit here gives the same weights."""
        worker = self._worker
        if worker is None or self._worker_asked != self._solve_key():
            return None
        try:
            return worker.done(self._generation)
        except FitWorkerError as exc:
            self._drop_worker(str(exc))
            return None

    def _start_worker(self) -> None:
        try:
            worker = FitWorker()
        except OSError as exc:
            log.warning("step values: cannot start the fit worker (%s); fitting here", exc)
            self.fit_process = False
            return
        self._worker = worker
        for record_id, rows in self._data.items():
            if not self._tell_worker(partial(_send_rows, record_id=record_id, rows=rows)):
                return

    def _tell_worker(self, message: Callable[[FitWorker], object]) -> bool:
        if self._worker is None:
            return False
        try:
            message(self._worker)
            return True
        except FitWorkerError as exc:
            self._drop_worker(str(exc))
            return False

    def _drop_worker(self, why: str) -> None:
        log.warning("step values: the fit worker stopped (%s); fitting in this process", why)
        self._stop_worker()

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.close()
        self._worker, self._worker_asked, self.fit_process = None, None, False

    def close(self) -> None:
        """Stop the fit worker, if one runs (the values stay usable: fits run here)."""
        with self._lock:
            self._stop_worker()

    # -- acting ---------------------------------------------------------------------

    def snapshot(self) -> ValueSnapshot:
        """The values as they stand now, to act on for a whole episode: no store round trip
        and no lock per step. Learning that happens later does not change a snapshot."""
        with self._lock:
            self._sync()
            if not self._fitted:
                self._fit()
            iw = self.params.immediate_weight
            if self._combined is None or self._combined[0] != iw:
                returns, immediate = self._fit_weights
                self._combined = (iw, combine(returns, immediate, iw))
            return ValueSnapshot(
                self._combined[1],
                self._signatures,
                self._recent,
                len(self._episodes),
                sum(map(len, self._data.values())),
                self.params,
            )

    def episodes(self) -> int:
        """Distinct episodes the values were learned from."""
        with self._lock:
            self._sync()
            return len(self._episodes)

    def active(self) -> bool:
        return self.episodes() >= self.params.min_episodes

    def count(self) -> int:
        return self.backend.count(self.collection)


@dataclass(frozen=True)
class ValueSnapshot:
    """The step-value function as it stood at one moment (``ValueFunction.snapshot``):
    the combined weights and the signature counts that exploration uses."""

    weights: np.ndarray
    signatures: Counter[str]
    recent: Counter[str]
    episodes: int
    """Distinct episodes the values were learned from."""
    support: int
    """Records the values were fitted on."""
    params: ValueParams

    def active(self) -> bool:
        return self.episodes >= self.params.min_episodes

    def assess(self, ctx: EpisodeText, actions: Sequence[str]) -> Assessment:
        """The value and the signature of each of ``actions`` in context ``ctx``."""
        views = [analyse(ctx, a) for a in actions]
        if not views:
            return Assessment([], [])
        # A view's value is computed once per context and weights: most actions keep their
        # view from one step to the next. The new ones are summed in one gather and one
        # segmented sum (every view has its bias, so no segment is empty).
        known = ctx.scores(self.weights)
        new = list({v.key: v for v in views if v.key not in known}.values())
        if new:
            counts = [len(v.features) for v in new]
            index = np.concatenate([v.index for v in new])
            starts = list(accumulate(counts[:-1], initial=0))
            sums = np.add.reduceat(self.weights[index], starts).tolist()
            known.update(zip([v.key for v in new], sums, strict=True))
        return Assessment([known[v.key] for v in views], [v.signature for v in views])

    def propose(
        self,
        ctx: EpisodeText,
        admissible: Sequence[str],
        k: int,
        values: Sequence[float] | None = None,
    ) -> list[ActionProposal]:
        """The ``k`` admissible actions of highest value, best first (``values``: those of
        ``admissible`` when the caller has computed them already)."""
        vals = self.assess(ctx, admissible).values if values is None else values
        ranked = sorted(zip(admissible, vals, strict=True), key=lambda av: (-av[1], av[0]))
        return [
            ActionProposal(action=a, value=v, support=self.support, similarity=1.0, ids=[])
            for a, v in ranked[:k]
        ]

    def explore_choice(
        self,
        ctx: EpisodeText,
        admissible: Sequence[str],
        rng: random.Random,
        assessment: Assessment | None = None,
    ) -> tuple[str, bool]:
        """The action to take while learning, and whether it was a random pick
        (``assessment``: that of ``admissible`` when the caller has it already)."""
        p = self.params
        fresh = [a for a in admissible if a not in ctx.taken] or list(admissible)
        eps = max(p.epsilon_min, p.epsilon * p.epsilon_decay**self.episodes)
        if rng.random() < eps:
            return fresh[rng.randrange(len(fresh))], True
        seen = assessment or self.assess(ctx, admissible)
        mine = Counter(ctx.signatures)
        counts = [self.signatures[s] + self.recent[s] + mine[s] for s in seen.signatures]
        taken = set(ctx.taken)
        floor = p.untried_floor
        scored = [
            (
                (max(v, floor) if n == 0 and floor is not None else v)
                + (p.novelty_bonus if a not in taken else 0.0)
                + p.coverage_bonus / (1.0 + n) ** 0.5,
                a,
            )
            for a, v, n in zip(admissible, seen.values, counts, strict=True)
        ]
        best = max(s for s, _ in scored)
        ties = [a for s, a in scored if s >= best - 1e-9]
        return ties[rng.randrange(len(ties))], False


def discovery(words: int, params: ValueParams) -> float:
    """What a step earns for showing ``words`` content words new to its episode."""
    return params.discovery_reward * min(1.0, words / params.discovery_words)


def instruction_credit(
    steps: Sequence[ValueStep], weight: float, rewards: Sequence[float] | None = None
) -> list[float]:
    """What each step earns for the instructions it revealed: ``weight`` times the reward
    of every later rewarded step whose ``source`` it is (``rewards``: what each step earned,
    when not just ``ValueStep.reward``)."""
    return _credit_back(steps, weight, rewards, [s.source for s in steps])


def enabler_credit(
    steps: Sequence[ValueStep], weight: float, rewards: Sequence[float] | None = None
) -> list[float]:
    """What each step earns for opening the way: ``weight`` times the reward of every later
    rewarded step whose ``enabler`` it is (``rewards`` as in ``instruction_credit``)."""
    return _credit_back(steps, weight, rewards, [s.enabler for s in steps])


def _credit_back(
    steps: Sequence[ValueStep],
    weight: float,
    rewards: Sequence[float] | None,
    to: Sequence[int | None],
) -> list[float]:
    """``weight`` times each rewarded step's reward, credited to the earlier step ``to``
    names for it."""
    earned = [s.reward for s in steps] if rewards is None else rewards
    credit = [0.0] * len(steps)
    for i, target in enumerate(to):
        if earned[i] > 0 and target is not None and 0 <= target < i:
            credit[target] += weight * earned[i]
    return credit


def enablers(actions: Sequence[str], enabled: Sequence[Iterable[str]]) -> list[int | None]:
    """For each of an episode's ``actions``, the index of the step after which it became
    admissible, the last time it did before it was taken (None: admissible from the start,
    or never listed). ``enabled[i]``: the actions admissible after step ``i`` that were not
    admissible before it."""
    since: dict[str, int] = {}
    out: list[int | None] = []
    for i, action in enumerate(actions):
        out.append(since.get(action))
        for a in enabled[i] if i < len(enabled) else ():
            since[a] = i
    return out


def newly_admissible(before: Sequence[str], after: Sequence[str]) -> list[str]:
    """The actions of ``after`` that ``before`` did not list."""
    old = set(before)
    return [a for a in after if a not in old]


def stored_steps(rec: MemoryRecord) -> list[StoredStep]:
    """The steps a value record holds: all of its episode's, or (records written before
    there was one record per episode) the one step it is."""
    raw = rec.meta.get("steps")
    if isinstance(raw, list):
        return [StoredStep.model_validate(s) for s in raw]
    feats = str(rec.meta.get("features", ""))
    reward = float(rec.meta.get("reward", 0.0) or 0.0)
    return [
        StoredStep(
            step=int(rec.meta.get("step", 0) or 0),
            state=rec.key,
            action=rec.text,
            reward=reward,
            discovery=float(rec.meta.get("discovery", 0.0) or 0.0),
            credit=float(rec.meta.get("credit", 0.0) or 0.0),
            # Records written before the immediate model: the step's reward.
            immediate=float(rec.meta.get("immediate", reward) or 0.0),
            signature=str(rec.meta.get("signature", "") or ""),
            features=[int(x) for x in feats.split()],
            q=rec.q,
        )
    ]


def _send_rows(worker: FitWorker, record_id: str, rows: list[_Row]) -> None:
    worker.add(
        record_id,
        [r.features for r in rows],
        [np.array([r.target for r in rows]), np.array([r.immediate for r in rows])],
    )


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - platforms without affinity
        return os.cpu_count() or 1


def _rows(rec: MemoryRecord, steps: list[StoredStep] | None = None) -> list[_Row]:
    episode = rec.provenance.episode_id or rec.id
    return [
        _Row(np.array(s.features, dtype=np.int64), s.q, s.immediate, episode, s.signature)
        for s in (stored_steps(rec) if steps is None else steps)
    ]
