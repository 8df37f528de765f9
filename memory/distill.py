"""Distilled experiences (after ExpeL, MUSE and Agent Workflow Memory).

Finished episodes are buffered and, every few episodes, abstracted per group of similar
tasks into two kinds of items:

- **workflows**, LLM-free (``memory/workflows.py``): the actions the successful
  trajectories share, in order, with slots where their words differ (``cook potato with {X}``);
- **insights**, by the LLM: up to a few short lessons from comparing successes and failures.

Items carry votes (``q``: +1 per episode that used them and succeeded, -1 per failure).
``consolidate`` deletes items whose votes stay low and merges near-duplicates. Retired items
are deleted rather than flagged: the planner retrieves through ``TextCollection.retrieve``,
which cannot filter on metadata, so a flag would not keep them out of prompts.
``consolidate`` returns the deleted records for whoever wants to log them.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from agent.errors import InvalidLLMOutput
from agent.llm.base import LLMClient
from memory.collection import TextCollection
from memory.grouping import clip_chars, greedy_clusters, note_key, squash, unique
from memory.records import MemoryHit, MemoryRecord, Provenance
from memory.workflows import extract_workflow

if TYPE_CHECKING:
    from agent.result import EpisodeResult

DISTILL_VERIFIER = "distilled"
MAX_EPISODES_PER_ITEM = 50
_ALPHA = re.compile(r"[A-Za-z]{2,}")

ItemType = Literal["workflow", "insight"]


class DistillParams(BaseModel):
    """Knobs of the experience distiller."""

    every: int = Field(default=5, ge=1)
    """Episodes observed between two distillations."""
    max_buffer: int = Field(default=50, ge=2)
    """Episodes kept while waiting for enough successes (oldest dropped first)."""
    task_similarity: float = Field(default=0.8, ge=-1.0, le=1.0)
    """Cosine similarity of two task texts at which their episodes are compared together."""
    max_slot_fraction: float = Field(default=0.5, ge=0.0, lt=1.0)
    """Share of an action's words that may differ (and become slots) for two actions of
    different trajectories to align in a workflow."""
    min_workflow_steps: int = Field(default=2, ge=1)
    """Shortest workflow worth storing."""
    max_insights: int = Field(default=3, ge=0)
    """Insights kept per group of similar tasks."""
    insight_max_chars: int = Field(default=200, ge=20)
    """Longest kept insight; items share a small prompt budget."""
    insight_min_words: int = Field(default=3, ge=1)
    """Insights with fewer words are junk, not lessons."""
    insight_max_tokens: int = Field(default=256, ge=16)
    """Token limit of one insight call."""
    examples_per_side: int = Field(default=3, ge=1)
    """Successes and failures shown to the LLM per group."""
    prompt_actions: int = Field(default=16, ge=2)
    """Actions shown per example episode (the middle of longer ones is elided)."""
    key_task_words: int = Field(default=24, ge=0)
    """Words of the group's task in each item's key, so the planner's task query finds it."""
    merge_threshold: float = Field(default=0.9, ge=-1.0, le=1.01)
    """Key similarity at which a new item updates an existing one. Set on the collection."""
    retrieve_threshold: float = Field(default=0.7, ge=-1.0, le=1.0)
    """Minimum similarity of a retrieved item. Set on the collection (the planner uses it)."""
    retrieve_k: int = Field(default=3, ge=1)
    """Items returned by ``retrieve``."""
    retire_q: float = -2.0
    """Items whose net votes are at or below this after ``min_uses`` uses are retired."""
    min_uses: int = Field(default=3, ge=1)
    """Uses before an item can be retired: a new item is not judged on one bad episode."""


class EpisodeDigest(BaseModel):
    """A finished episode as the distiller sees it."""

    episode_id: str
    task: str
    actions: list[str] = Field(default_factory=list)
    success: bool
    score: float = 0.0
    max_score: float = 0.0
    env_id: str = ""
    seed: int = 0

    @classmethod
    def from_result(cls, result: EpisodeResult) -> EpisodeDigest:
        return cls(
            episode_id=result.thread_id,
            task=result.task,
            actions=[s.action for s in result.trajectory if s.action],
            success=result.success,
            score=result.score,
            max_score=result.max_score,
            env_id=result.env,
            seed=result.seed,
        )


class Insights(BaseModel):
    """The LLM's answer: lessons from comparing successes with failures."""

    insights: list[str] = Field(default_factory=list, description="Up to 3 short lessons.")


class DistillReport(BaseModel):
    """What one distillation wrote."""

    episodes: list[str]
    groups: int
    """Groups of similar tasks the episodes fell into."""
    workflows: list[str]
    insights: list[str]
    """Ids written (a merged item keeps its id)."""
    invalid_llm: int = 0
    """Groups whose insight answer never parsed."""


class ConsolidationReport(BaseModel):
    """What one consolidation deleted and merged."""

    retired: list[MemoryRecord] = Field(default_factory=list)
    merged: dict[str, str] = Field(default_factory=dict)
    """Absorbed id -> surviving id."""


class ExperienceDistiller:
    """Turns batches of finished episodes into workflows and insights, with votes.

    The distiller sets its thresholds on ``experiences``: the planner retrieves through the
    same collection object.
    """

    def __init__(
        self, experiences: TextCollection, llm: LLMClient, params: DistillParams | None = None
    ) -> None:
        self.experiences = experiences
        self.llm = llm
        self.params = params or DistillParams()
        experiences.threshold = self.params.retrieve_threshold
        experiences.merge_threshold = self.params.merge_threshold
        self._buffer: list[EpisodeDigest] = []
        self._since = 0

    @property
    def pending(self) -> list[EpisodeDigest]:
        return list(self._buffer)

    def observe(self, episode: EpisodeDigest) -> DistillReport | None:
        """Buffer a finished episode; distill when it is time and there is something to learn
        (a success and a failure to compare, or two successes to align)."""
        self._buffer.append(episode)
        del self._buffer[: -self.params.max_buffer]
        self._since += 1
        wins = sum(e.success for e in self._buffer)
        fails = len(self._buffer) - wins
        if self._since >= self.params.every and (wins >= 2 or (wins and fails)):
            return self.distill()
        return None

    def distill(self) -> DistillReport:
        """Distill the buffered episodes now and empty the buffer."""
        p = self.params
        episodes, self._buffer, self._since = self._buffer, [], 0
        report = DistillReport(
            episodes=[e.episode_id for e in episodes], groups=0, workflows=[], insights=[]
        )
        if not episodes:
            return report
        vecs = self.experiences.embedder.embed([e.task for e in episodes])
        groups = greedy_clusters(vecs, p.task_similarity)
        report.groups = len(groups)
        for members in groups:
            group = [episodes[i] for i in members]
            wins = [e for e in group if e.success]
            fails = [e for e in group if not e.success]
            task = Counter(e.task for e in group).most_common(1)[0][0]
            if len(wins) >= 2:
                flow = extract_workflow([e.actions for e in wins], p.max_slot_fraction)
                if flow is not None and len(flow.steps) >= p.min_workflow_steps:
                    key = note_key("workflow", task, p.key_task_words)
                    extra = {"steps": flow.steps, "slots": flow.slots}
                    wid = self._store("workflow", key, flow.render(), flow.support, wins, extra)
                    report.workflows.append(wid)
            if wins and (fails or len(wins) >= 2) and p.max_insights:
                lessons = self._insights(task, wins, fails)
                if lessons is None:
                    report.invalid_llm += 1
                    continue
                for text in lessons:
                    key = note_key(text, task, p.key_task_words)
                    report.insights.append(self._store("insight", key, text, len(group), group))
        return report

    def retrieve(self, query: str, k: int | None = None) -> list[MemoryHit]:
        return self.experiences.retrieve(query, k or self.params.retrieve_k)

    def vote(self, ids: list[str], success: bool) -> None:
        """Evidence from an episode whose prompts contained ``ids``."""
        self.experiences.vote(ids, up=success)

    def consolidate(self) -> ConsolidationReport:
        """Delete items whose votes stayed low, then merge near-duplicate keys (written by
        concurrent processes, imported, or stored before the merge threshold was lowered)."""
        p = self.params
        col = self.experiences
        recs = list(col.backend.scan(col.collection))
        retired = [r for r in recs if r.uses >= p.min_uses and r.q <= p.retire_q]
        if retired:
            col.backend.delete(col.collection, [r.id for r in retired])
        gone = {r.id for r in retired}
        alive = [r for r in recs if r.id not in gone]
        report = ConsolidationReport(retired=retired)
        if len(alive) < 2:
            return report
        vecs = col.embedder.embed([r.key for r in alive])
        sims = vecs @ vecs.T
        survivors: dict[str, MemoryRecord] = {}
        for i, keep in enumerate(alive):
            if keep.id in report.merged:
                continue
            for j in range(i + 1, len(alive)):
                other = alive[j]
                if (
                    other.id in report.merged
                    or float(sims[i, j]) < p.merge_threshold
                    or keep.meta.get("type") != other.meta.get("type")
                ):
                    continue
                _absorb(keep, other)
                report.merged[other.id] = keep.id
                survivors[keep.id] = keep
        if survivors:
            col.backend.update(col.collection, list(survivors.values()))
            col.backend.delete(col.collection, list(report.merged))
        return report

    # -- internals ----------------------------------------------------------------------

    def _store(
        self,
        kind: ItemType,
        key: str,
        text: str,
        evidence: int,
        episodes: Sequence[EpisodeDigest],
        extra: dict[str, Any] | None = None,
    ) -> str:
        col = self.experiences
        near = col.backend.query(col.collection, col.embedder.embed([key])[0], 1)
        # Rediscovering an item adds to its evidence instead of resetting it.
        prev = near[0][0] if near and near[0][1] >= col.merge_threshold else None
        old_eps = [str(e) for e in prev.meta.get("episodes", [])] if prev else []
        ids = list(dict.fromkeys([*old_eps, *(e.episode_id for e in episodes)]))
        total = evidence + (int(prev.meta.get("evidence", 0)) if prev else 0)
        first = episodes[0]
        prov = Provenance(
            episode_id=first.episode_id,
            env_id=first.env_id or None,
            seed=first.seed,
            outcome="success" if kind == "workflow" else "unknown",
            verifier=DISTILL_VERIFIER,
        )
        meta = {
            "type": kind,
            "evidence": total,
            "episodes": ids[-MAX_EPISODES_PER_ITEM:],
            **(extra or {}),
        }
        return col.add(key=key, text=text, provenance=prov, meta=meta)

    def _insights(
        self, task: str, wins: list[EpisodeDigest], fails: list[EpisodeDigest]
    ) -> list[str] | None:
        """Cleaned lessons, or None when the LLM never gave a parseable answer."""
        p = self.params
        lines = [
            f"Successful and failed attempts at similar tasks. Write up to {p.max_insights} "
            "short insights (one sentence each) on what the successes did that the failures "
            "did not, general enough to help with similar tasks.",
            f"Task: {squash(task)}",
        ]
        for label, eps in (("Success", wins), ("Failure", fails)):
            for i, e in enumerate(eps[: p.examples_per_side], 1):
                lines.append(f"{label} {i} (score {e.score:g}/{e.max_score:g}): {self._actions(e)}")
        lines.append('Answer as JSON {"insights": ["...", "..."]}.')
        try:
            raw = self.llm.structured(
                "\n".join(lines) + "\n", Insights, max_tokens=p.insight_max_tokens
            ).insights
        except InvalidLLMOutput:
            return None
        cleaned = [clip_chars(t, p.insight_max_chars) for t in raw]
        cleaned = [t for t in cleaned if len(_ALPHA.findall(t)) >= p.insight_min_words]
        return unique(cleaned)[: p.max_insights]

    def _actions(self, e: EpisodeDigest) -> str:
        n = self.params.prompt_actions
        acts = e.actions
        if len(acts) > n:
            acts = [*acts[: n // 2], "...", *acts[-(n - n // 2) :]]
        return " > ".join(acts) or "(no actions)"


def _absorb(keep: MemoryRecord, other: MemoryRecord) -> None:
    """Fold ``other``'s votes and evidence into ``keep``; the better-voted text wins.

    The older id survives because episodes' ``memories_used`` may still name it.
    """
    if other.q > keep.q:
        keep.text = other.text
    keep.q += other.q
    keep.uses += other.uses
    keep.successes += other.successes
    keep.failures += other.failures
    keep.meta["evidence"] = int(keep.meta.get("evidence", 0)) + int(other.meta.get("evidence", 0))
    eps = [*keep.meta.get("episodes", []), *other.meta.get("episodes", [])]
    keep.meta["episodes"] = list(dict.fromkeys(eps))[-MAX_EPISODES_PER_ITEM:]
    keep.meta["merged"] = int(keep.meta.get("merged", 0)) + 1 + int(other.meta.get("merged", 0))
    keep.provenance.updated_at = time.time()
