"""Step-level action values ("episodic control"): memory proposes actions for a state.

Every step of a finished episode becomes a (state, action) record whose value is learned
from the environment's rewards: the discounted return from that step, plus a terminal
bonus for a win or a penalty for a loss. Records with the same action and a near-identical
state are one record, updated with Q <- Q + alpha*(G - Q). At a new state, the values of
similar past states' actions are averaged (weighted by similarity) into ranked proposals
restricted to what is admissible now.

The estimate for an action is a kernel regression over the past states that took it,
shrunk toward 0 by a prior pseudo-count: Q(s, a) = sum(w_i Q_i) / (w0 + sum(w_i)) with
w_i = exp(-(1 - sim_i) / width). An exact match dominates; a merely similar state's value
counts for less, so a near state's big value cannot outrank the exact state's own action.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from memory.base import VectorBackend
from memory.embeddings import Embedder, Vectors
from memory.records import MemoryRecord, Provenance, new_id


class ActionParams(BaseModel):
    """How step values are learned and turned into proposals."""

    gamma: float = Field(default=0.9, ge=0, le=1)
    """Discount of later rewards in a step's return."""
    alpha: float = Field(default=0.3, gt=0, le=1)
    """Learning rate when a (state, action) is seen again."""
    win_bonus: float = 1.0
    """Added to the last step's reward when the episode was won."""
    loss_penalty: float = -1.0
    """Added to the last step's reward when the episode was lost or failed."""
    neighbours: int = Field(default=16, ge=1)
    """Similar past states consulted per proposal."""
    state_threshold: float = Field(default=0.75, ge=-1, le=1)
    """Past states less similar than this are ignored."""
    merge_threshold: float = Field(default=0.97, ge=0, le=1)
    """A state this similar, with the same action, updates the existing record."""
    kernel_width: float = Field(default=0.05, gt=0)
    """How fast a past state's weight falls with dissimilarity (exp(-(1-sim)/width))."""
    prior_weight: float = Field(default=0.5, ge=0)
    """Pseudo-count of a value-0 prior: evidence from few or distant states is shrunk."""


class ActionProposal(BaseModel):
    action: str
    value: float
    """Kernel-weighted mean of the learned values, shrunk toward 0 by the prior."""
    support: int
    """How many similar past states took this action."""
    similarity: float
    """Best similarity among them."""
    ids: list[str]


class StepSample(BaseModel):
    """One step of a finished episode, as the action memory learns from it."""

    state: str
    action: str
    reward: float


def discounted_returns(rewards: Sequence[float], gamma: float) -> list[float]:
    out = [0.0] * len(rewards)
    acc = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        acc = rewards[i] + gamma * acc
        out[i] = acc
    return out


class ActionMemory:
    """(state, action, value) records in one collection of a backend."""

    def __init__(
        self,
        backend: VectorBackend,
        embedder: Embedder,
        collection: str,
        params: ActionParams | None = None,
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.collection = collection
        self.params = params or ActionParams()
        self._lock = threading.Lock()

    def learn(
        self, steps: Sequence[StepSample], success: bool, provenance: Provenance | None = None
    ) -> list[str]:
        """Learn from a finished episode; returns the ids of the records written."""
        if not steps:
            return []
        p = self.params
        rewards = [s.reward for s in steps]
        rewards[-1] += p.win_bonus if success else p.loss_penalty
        returns = discounted_returns(rewards, p.gamma)
        vecs = self.embedder.embed([s.state for s in steps])
        prov = provenance or Provenance()
        prov.outcome = "success" if success else "failure"
        written: list[str] = []
        with self._lock:
            # One query for all steps, one update and one add: a round trip per step made
            # learning cost ~100 ms a step on embedded Chroma. Records touched earlier in the
            # same episode are matched here, as they would have been by a query per step.
            hits = self.backend.query_many(self.collection, vecs, p.neighbours)
            touched: dict[str, MemoryRecord] = {}
            fresh: dict[str, tuple[MemoryRecord, Vectors]] = {}
            for step, g, vec, found in zip(steps, returns, vecs, hits, strict=True):
                candidates = [(touched.get(r.id, r), sim) for r, sim in found]
                candidates += [(r, float(v @ vec)) for r, v in fresh.values()]
                same = [
                    (r, sim)
                    for r, sim in candidates
                    if sim >= p.merge_threshold and r.meta.get("action") == step.action
                ]
                if same:
                    rec = max(same, key=lambda c: c[1])[0]
                    rec.q += p.alpha * (g - rec.q)
                    rec.uses += 1
                    rec.successes += int(success)
                    rec.failures += int(not success)
                    rec.provenance.updated_at = time.time()
                    if rec.id not in fresh:
                        touched[rec.id] = rec
                else:
                    rec = MemoryRecord(
                        id=new_id("act"),
                        kind="action",
                        key=step.state,
                        text=step.action,
                        q=g,
                        uses=1,
                        successes=int(success),
                        failures=int(not success),
                        provenance=prov.model_copy(),
                        meta={"action": step.action},
                    )
                    fresh[rec.id] = (rec, vec)
                written.append(rec.id)
            if touched:
                self.backend.update(self.collection, list(touched.values()))
            if fresh:
                records = [r for r, _ in fresh.values()]
                self.backend.add(self.collection, records, np.stack([v for _, v in fresh.values()]))
        return list(dict.fromkeys(written))

    def propose(self, state: str, admissible: Sequence[str], k: int = 3) -> list[ActionProposal]:
        """Ranked actions for ``state`` among ``admissible``, from similar past states."""
        p = self.params
        allowed = set(admissible)
        vec = self.embedder.embed([state])[0]
        by_action: dict[str, list[tuple[MemoryRecord, float]]] = {}
        for rec, sim in self.backend.query(self.collection, vec, p.neighbours):
            action = str(rec.meta.get("action", rec.text))
            if sim >= p.state_threshold and action in allowed:
                by_action.setdefault(action, []).append((rec, sim))
        proposals = []
        for action, hits in by_action.items():
            weights = [math.exp(-(1.0 - s) / p.kernel_width) for _, s in hits]
            value = sum(w * r.q for w, (r, _) in zip(weights, hits, strict=True)) / (
                p.prior_weight + sum(weights)
            )
            proposals.append(
                ActionProposal(
                    action=action,
                    value=value,
                    support=len(hits),
                    similarity=max(s for _, s in hits),
                    ids=[r.id for r, _ in hits],
                )
            )
        proposals.sort(key=lambda a: (-a.value, -a.support, a.action))
        return proposals[:k]

    def count(self) -> int:
        return self.backend.count(self.collection)
