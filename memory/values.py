"""Step values that carry over to new games: a linear function of generic text features.

The ``action`` memory remembers values per (state, action) and helps only in states it has
seen. This kind stores every step of every finished episode as a record (the action, the
hashed features of the action in its context from ``memory.textfeatures``, and the step's
return: discounted reward plus a terminal bonus or penalty), and fits a ridge regression
from features to return over all records. The fitted weights are derived state: they are
refitted whenever the set of records changes, so deleting an episode's records (``evolvent
memory delete``) removes what it taught.

Acting on the values: ``propose`` ranks the admissible actions of a state; while learning,
``explore_choice`` adds a bonus to actions not yet taken in the episode and, with a
probability that falls as episodes accumulate, picks one of those at random.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from memory.actions import ActionProposal, discounted_returns
from memory.base import VectorBackend
from memory.embeddings import Embedder
from memory.records import MemoryRecord, Provenance, new_id
from memory.textfeatures import DIM, EpisodeText, action_features


class ValueParams(BaseModel):
    """How the value function is learned and explored."""

    gamma: float = Field(default=0.9, ge=0, le=1)
    """Discount of later rewards in a step's return."""
    win_bonus: float = 1.0
    """Added to the last reward of a won episode."""
    loss_penalty: float = -1.0
    """Added to the last reward of a lost episode."""
    unfinished_penalty: float = -0.5
    """Added to the last reward of an episode that ran out of steps."""
    ridge: float = Field(default=1.0, gt=0)
    """L2 penalty of the fit."""
    fit_iterations: int = Field(default=60, ge=1)
    """Conjugate-gradient iterations per fit (warm-started from the last weights)."""
    min_episodes: int = Field(default=1, ge=1)
    """Episodes learned before the values propose anything."""
    novelty_bonus: float = Field(default=0.5, ge=0)
    """While learning: added to the value of actions not yet taken in this episode."""
    epsilon: float = Field(default=0.2, ge=0, le=1)
    """While learning: chance of a random not-yet-taken action, at the first episode."""
    epsilon_decay: float = Field(default=0.98, gt=0, le=1)
    """Factor applied to ``epsilon`` per learned episode."""
    epsilon_min: float = Field(default=0.05, ge=0, le=1)


class ValueStep(BaseModel):
    """One step of a finished episode as the value function learns from it."""

    state: str
    """A short description of the state (its observation), for inspection and search."""
    action: str
    reward: float
    features: list[int]


class ValueFunction:
    """Records of (features, return) in one collection, and the ridge fit over them."""

    def __init__(
        self,
        backend: VectorBackend,
        embedder: Embedder,
        collection: str,
        params: ValueParams | None = None,
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.collection = collection
        self.params = params or ValueParams()
        self._lock = threading.Lock()
        self._weights = np.zeros(DIM)
        self._data: dict[str, tuple[np.ndarray, float, str]] = {}
        """Record id -> (feature indices, target, episode id), mirroring the collection."""
        self._fitted = False

    # -- learning -------------------------------------------------------------------

    def learn(
        self,
        steps: Sequence[ValueStep],
        won: bool,
        lost: bool,
        provenance: Provenance | None = None,
    ) -> list[str]:
        """Store the steps of a finished episode and refit; returns the record ids."""
        if not steps:
            return []
        p = self.params
        rewards = [s.reward for s in steps]
        rewards[-1] += p.win_bonus if won else (p.loss_penalty if lost else p.unfinished_penalty)
        returns = discounted_returns(rewards, p.gamma)
        prov = provenance or Provenance()
        prov.outcome = "success" if won else "failure"
        records = [
            MemoryRecord(
                id=new_id("val"),
                kind="value",
                key=step.state,
                text=step.action,
                q=g,
                uses=1,
                successes=int(won),
                failures=int(not won),
                provenance=prov.model_copy(),
                meta={
                    "step": i,
                    "reward": step.reward,
                    "features": " ".join(map(str, step.features)),
                },
            )
            for i, (step, g) in enumerate(zip(steps, returns, strict=True))
        ]
        vectors = self.embedder.embed([r.key for r in records])
        with self._lock:
            self.backend.add(self.collection, records, vectors)
            self._sync()
            for rec in records:
                self._data[rec.id] = _row(rec)
            self._fit()
        return [r.id for r in records]

    def _sync(self) -> None:
        """Reload the mirror when the collection changed behind it (deletes, imports,
        other processes sharing a Chroma server)."""
        if len(self._data) != self.backend.count(self.collection):
            self._data = {rec.id: _row(rec) for rec in self.backend.scan(self.collection)}
            self._fitted = False

    def _fit(self) -> None:
        rows = list(self._data.values())
        if not rows:
            self._weights = np.zeros(DIM)
            self._fitted = True
            return
        feats = [r[0] for r in rows]
        y = np.array([r[1] for r in rows])
        self._weights = ridge_fit(
            feats, y, self.params.ridge, self.params.fit_iterations, self._weights
        )
        self._fitted = True

    # -- acting ---------------------------------------------------------------------

    def episodes(self) -> int:
        """Distinct episodes the values were learned from."""
        with self._lock:
            self._sync()
            return len({r[2] for r in self._data.values()})

    def active(self) -> bool:
        return self.episodes() >= self.params.min_episodes

    def values(self, ctx: EpisodeText, actions: Sequence[str]) -> list[float]:
        with self._lock:
            self._sync()
            if not self._fitted:
                self._fit()
            w = self._weights
        return [float(w[action_features(ctx, a)].sum()) for a in actions]

    def propose(
        self,
        ctx: EpisodeText,
        admissible: Sequence[str],
        k: int,
        values: Sequence[float] | None = None,
    ) -> list[ActionProposal]:
        """The ``k`` admissible actions of highest value, best first (``values``: those of
        ``admissible`` when the caller has computed them already)."""
        vals = self.values(ctx, admissible) if values is None else values
        support = len(self._data)
        ranked = sorted(zip(admissible, vals, strict=True), key=lambda av: (-av[1], av[0]))
        return [
            ActionProposal(action=a, value=v, support=support, similarity=1.0, ids=[])
            for a, v in ranked[:k]
        ]

    def explore_choice(
        self,
        ctx: EpisodeText,
        admissible: Sequence[str],
        rng: random.Random,
        values: Sequence[float] | None = None,
    ) -> tuple[str, bool]:
        """The action to take while learning, and whether it was a random pick
        (``values`` as in ``propose``)."""
        p = self.params
        fresh = [a for a in admissible if a not in ctx.taken] or list(admissible)
        eps = max(p.epsilon_min, p.epsilon * p.epsilon_decay ** self.episodes())
        if rng.random() < eps:
            return fresh[rng.randrange(len(fresh))], True
        vals = self.values(ctx, admissible) if values is None else values
        taken = set(ctx.taken)
        scored = [
            (v + (p.novelty_bonus if a not in taken else 0.0), a)
            for a, v in zip(admissible, vals, strict=True)
        ]
        best = max(s for s, _ in scored)
        ties = [a for s, a in scored if s >= best - 1e-9]
        return ties[rng.randrange(len(ties))], False

    def count(self) -> int:
        return self.backend.count(self.collection)


def _row(rec: MemoryRecord) -> tuple[np.ndarray, float, str]:
    raw = str(rec.meta.get("features", ""))
    feats = np.array([int(x) for x in raw.split()], dtype=np.int64)
    return feats, rec.q, rec.provenance.episode_id or rec.id


def ridge_fit(
    feats: Sequence[np.ndarray], y: np.ndarray, ridge: float, iterations: int, start: np.ndarray
) -> np.ndarray:
    """Weights ``w`` minimizing ``|Xw - y|^2 + ridge |w|^2`` for binary rows ``X`` given as
    index arrays, by conjugate gradients on the normal equations."""
    counts = np.array([len(f) for f in feats])
    keep = counts > 0
    if not keep.any():
        return np.zeros(DIM)
    feats = [f for f, k in zip(feats, keep, strict=True) if k]
    y, counts = y[keep], counts[keep]
    indices = np.concatenate(feats)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def xv(w: np.ndarray) -> np.ndarray:
        return np.add.reduceat(w[indices], starts)

    def xtu(u: np.ndarray) -> np.ndarray:
        return np.bincount(indices, weights=np.repeat(u, counts), minlength=DIM)

    def a(w: np.ndarray) -> np.ndarray:
        return xtu(xv(w)) + ridge * w

    w = start.copy()
    r = xtu(y) - a(w)
    d = r.copy()
    rs = float(r @ r)
    for _ in range(iterations):
        if rs < 1e-12:
            break
        ad = a(d)
        step = rs / float(d @ ad)
        w += step * d
        r -= step * ad
        rs_new = float(r @ r)
        d = r + (rs_new / rs) * d
        rs = rs_new
    return w
