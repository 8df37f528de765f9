"""Q-valued episodic memory (after MemRL): two-phase retrieval and Monte-Carlo Q updates.

Retrieval: (A) semantic recall keeps candidates with cosine >= delta, top k1;
(B) value-aware re-rank: score = (1-lam)*z(sim) + lam*z(Q), z-scores over the candidates
clipped to +-3, candidates with Q < q_min dropped, top k2 kept; with probability epsilon the
last slot goes to a random other candidate (exploration).
Update, for every memory injected into an episode: Q <- Q + alpha*(r - Q).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from memory.base import VectorBackend
from memory.embeddings import Embedder, Vectors
from memory.records import MemoryHit, MemoryRecord, Provenance, new_id

MAX_EPISODES = 50
"""A merged memory names at most this many of the episodes filed under it (``meta.episodes``,
the latest), as mistake notes and experiences do."""


class EpisodicParams(BaseModel):
    """Parameters of the MemRL retrieval and update rule."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    delta: float = Field(default=0.5, ge=-1, le=1)
    """Similarity threshold of phase A."""
    k1: int = Field(default=5, ge=1)
    """Candidates kept by phase A."""
    k2: int = Field(default=3, ge=1)
    """Memories returned by phase B."""
    lam: float = Field(default=0.5, ge=0, le=1)
    """Weight of Q against similarity in phase B."""
    q_min: float = -0.5
    """Candidates whose Q is below this floor are dropped."""
    epsilon: float = Field(default=0.05, ge=0, le=1)
    """Probability of swapping the last slot for a random candidate."""
    alpha: float = Field(default=0.3, gt=0, le=1)
    """Learning rate of the Q update."""
    q0: float = 0.0
    """Initial Q of a new memory."""
    merge_threshold: float = Field(default=0.9, ge=0, le=1)
    """A new intent this similar to an existing one is filed under it."""
    z_clip: float = Field(default=3.0, gt=0)
    history: int = Field(default=5, ge=1)
    """Past experiences kept in a merged record's meta."""


def _zscores(values: np.ndarray[Any, Any], clip: float) -> np.ndarray[Any, Any]:
    std = float(values.std())
    if std < 1e-9:
        return np.zeros_like(values)
    return np.clip((values - values.mean()) / std, -clip, clip)  # type: ignore[no-any-return]


class EpisodicMemory:
    """(intent, experience, Q) records in one collection of a backend."""

    def __init__(
        self,
        backend: VectorBackend,
        embedder: Embedder,
        collection: str,
        params: EpisodicParams | None = None,
        seed: int = 0,
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.collection = collection
        self.params = params or EpisodicParams()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def add(
        self,
        intent: str,
        experience: str,
        success: bool,
        reward: float,
        meta: dict[str, Any] | None = None,
        provenance: Provenance | None = None,
    ) -> str:
        """Store an episode; returns its id (an existing id when the intent is merged)."""
        return self.learn_episode([], 0.0, intent, experience, success, reward, meta, provenance)

    def learn_episode(
        self,
        used: Sequence[str],
        outcome: float,
        intent: str,
        experience: str,
        success: bool,
        reward: float,
        meta: dict[str, Any] | None = None,
        provenance: Provenance | None = None,
    ) -> str:
        """``reinforce(used, outcome)`` then ``add(intent, ...)``, with the same result, in
        as few store writes as it takes: the records both change (an episode filed under a
        memory it used) are written once, together. Returns the episode's id."""
        prov = provenance or Provenance()
        prov.outcome = "success" if success else "failure"
        vec = self.embedder.embed([intent])
        entry = {"experience": experience, "success": success, "reward": reward, "at": time.time()}
        with self._lock:
            changed = {r.id: r for r in self._reinforced(used, outcome)}
            near = self.backend.query(self.collection, vec[0], 1)
            if near and near[0][1] >= self.params.merge_threshold:
                rec = changed.get(near[0][0].id, near[0][0])
                self._merge(rec, entry, success, prov)
                changed[rec.id] = rec
                self.backend.update(self.collection, list(changed.values()))
                return rec.id
            if changed:
                self.backend.update(self.collection, list(changed.values()))
            rec = MemoryRecord(
                id=new_id("ep"),
                kind="episode",
                key=intent,
                text=experience,
                q=self.params.q0,
                provenance=prov,
                meta={**(meta or {}), "reward": reward, "history": [entry]},
            )
            self.backend.add(self.collection, [rec], vec)
            return rec.id

    def _merge(
        self, rec: MemoryRecord, entry: dict[str, Any], success: bool, prov: Provenance
    ) -> None:
        """File an episode (its history ``entry``) under the existing record ``rec``."""
        hist = list(rec.meta.get("history", []))
        hist.append(entry)
        rec.meta["history"] = hist[-self.params.history :]
        rec.meta["merged"] = int(rec.meta.get("merged", 0)) + 1
        if prov.episode_id:  # every episode filed here, as notes and experiences keep them
            fed = [str(e) for e in rec.meta.get("episodes", [rec.provenance.episode_id]) if e]
            rec.meta["episodes"] = list(dict.fromkeys([*fed, prov.episode_id]))[-MAX_EPISODES:]
        # A success is a better example than a failure; don't let a failure replace it.
        if success or rec.provenance.outcome != "success":
            rec.text = str(entry["experience"])
            # The provenance is the episode whose experience the text is, all of it.
            rec.provenance = prov.model_copy(update={"created_at": rec.provenance.created_at})
        rec.provenance.updated_at = time.time()

    def recall(self, query: str) -> list[tuple[MemoryRecord, float]]:
        """Phase A: candidates with similarity >= delta, at most k1."""
        return self.recall_vector(self.embedder.embed([query])[0])

    def recall_vector(self, vector: Vectors) -> list[tuple[MemoryRecord, float]]:
        """Phase A for an already embedded query (unit vector)."""
        hits = self.backend.query(self.collection, vector, self.params.k1)
        return [(r, s) for r, s in hits if s >= self.params.delta]

    def rerank(self, candidates: list[tuple[MemoryRecord, float]], k: int) -> list[MemoryHit]:
        """Phase B: z-mix of similarity and Q, Q floor, top k, epsilon exploration."""
        p = self.params
        cands = [(r, s) for r, s in candidates if r.q >= p.q_min]
        if not cands:
            return []
        sims = np.array([s for _, s in cands], dtype=np.float64)
        qs = np.array([r.q for r, _ in cands], dtype=np.float64)
        scores = (1 - p.lam) * _zscores(sims, p.z_clip) + p.lam * _zscores(qs, p.z_clip)
        # Stable on ties: equal score keeps the similarity order from phase A.
        order = sorted(range(len(cands)), key=lambda i: -scores[i])
        chosen = order[:k]
        rest = order[k:]
        if rest and chosen and p.epsilon > 0 and self._rng.random() < p.epsilon:
            chosen[-1] = self._rng.choice(rest)
        return [
            MemoryHit(
                id=cands[i][0].id,
                kind="episode",
                key=cands[i][0].key,
                text=cands[i][0].text,
                similarity=float(sims[i]),
                q=float(qs[i]),
                score=float(scores[i]),
                record=cands[i][0],
            )
            for i in chosen
        ]

    def retrieve(self, query: str, k: int | None = None) -> list[MemoryHit]:
        """Two-phase retrieval; ``k`` overrides k2."""
        return self.rerank(self.recall(query), k if k is not None else self.params.k2)

    def retrieve_vector(self, vector: Vectors, k: int | None = None) -> list[MemoryHit]:
        """Two-phase retrieval for an already embedded query."""
        return self.rerank(self.recall_vector(vector), k if k is not None else self.params.k2)

    def reinforce(self, ids: Sequence[str], reward: float) -> dict[str, float]:
        """Q <- Q + alpha*(r - Q) for each id; returns the new Q values."""
        with self._lock:
            recs = self._reinforced(ids, reward)
            self.backend.update(self.collection, recs)
        return {rec.id: rec.q for rec in recs}

    def _reinforced(self, ids: Sequence[str], reward: float) -> list[MemoryRecord]:
        """The records of ``ids`` with their Q updated by ``reward`` (not written yet)."""
        if not ids:
            return []
        recs = self.backend.get(self.collection, list(dict.fromkeys(ids)))
        for rec in recs:
            rec.q = rec.q + self.params.alpha * (reward - rec.q)
            rec.uses += 1
            if reward > 0:
                rec.successes += 1
            else:
                rec.failures += 1
            rec.provenance.updated_at = time.time()
        return recs

    def count(self) -> int:
        return self.backend.count(self.collection)
