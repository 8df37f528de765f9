"""Mistake notebook (after "Mistake Notebook Learning"): batched failures become gated notes.

Failures are buffered. A full batch is labelled with short subjects by a tuner LLM, clustered
by subject, and each cluster becomes one structured note (what went wrong, the correct
approach, a strategy that carries over, anti-patterns). The update is then gated: the
batch's tasks are re-played once with the notes as they were and once with the notes as
they are now, and the update is kept only if the new notes win more tasks than they lose;
otherwise every note it touched is restored to its previous record.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from pydantic import BaseModel, Field

from agent.errors import InvalidLLMOutput
from agent.llm.base import LLMClient
from memory.collection import TextCollection
from memory.embeddings import Embedder
from memory.grouping import clip_chars, greedy_clusters, note_key, squash, unique
from memory.mistakes import (
    ALPHA,
    FailureCase,
    MistakeNote,
    Subject,
    clean_subject,
    fallback_note,
    render_note,
)
from memory.records import MemoryHit, MemoryRecord, Provenance, new_id
from memory.store import MemoryStore

GATE_VERIFIER = "rerun-gate"
MAX_EPISODES_PER_NOTE = 50


class NotebookParams(BaseModel):
    """Knobs of the mistake notebook."""

    batch_size: int = Field(default=4, ge=1)
    """Failures buffered before an update can run."""
    cluster_threshold: float = Field(default=0.8, ge=-1.0, le=1.0)
    """Cosine similarity of two subjects at which their failures share one note."""
    merge_threshold: float = Field(default=0.9, ge=-1.0, le=1.01)
    """Key similarity at which a note updates an existing one instead of being added. Set
    on the notes collection, so every writer of the collection merges alike."""
    retrieve_k: int = Field(default=3, ge=1)
    """Notes returned by ``retrieve``."""
    retrieve_threshold: float = Field(default=0.7, ge=-1.0, le=1.0)
    """Minimum similarity of a retrieved note. Set on the notes collection, so the planner's
    retrieval uses it too."""
    min_wins_margin: int = Field(default=1, ge=0)
    """An update is kept when re-run wins minus losses reach this margin."""
    subject_max_words: int = Field(default=8, ge=1)
    """Longest subject kept from the tuner's label."""
    key_task_words: int = Field(default=24, ge=0)
    """Words of the cluster's task appended to the subject in the note's key, so that the
    planner's task query finds the note (0: the key is the subject alone)."""
    subject_max_tokens: int = Field(default=32, ge=1)
    """Token limit of one labelling call."""
    note_max_tokens: int = Field(default=384, ge=16)
    """Token limit of one note-writing call."""
    field_max_chars: int = Field(default=240, ge=20)
    """Longest kept text of a note field; notes share a small prompt budget."""
    max_anti_patterns: int = Field(default=4, ge=0)
    """Anti-patterns kept per note."""
    prompt_actions: int = Field(default=12, ge=1)
    """Last actions of a failed episode shown to the tuner."""
    observation_chars: int = Field(default=300, ge=20)
    """Characters of the final observation shown to the tuner."""


class NotesView(BaseModel):
    """A frozen set of notes: what one re-run of a batch is allowed to see."""

    records: list[MemoryRecord] = Field(default_factory=list)
    threshold: float = 0.7
    """Retrieval threshold of the materialized notes collection."""

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def texts(self) -> list[str]:
        return [r.text for r in self.records]

    def materialize(
        self,
        embedder: Embedder,
        namespace: str = "notes-view",
        *,
        step_memory: MemoryStore | None = None,
    ) -> MemoryStore:
        """A fresh in-memory store whose notes are exactly this view's (same ids, texts and
        votes; episodes and experiences empty). An ``Agent`` built on it plans with these
        notes only, and whatever it writes stays out of the real store.

        ``step_memory``: the store whose step-level memory (step values and per-state
        actions) the new store reads, so that an agent re-playing with it chooses actions
        as the agent that learned them does. Only an agent that does not learn may use it:
        the two stores share those objects.
        """
        store = MemoryStore.in_memory(embedder, namespace=namespace)
        if step_memory is not None:
            store.values = step_memory.values
            store.actions = step_memory.actions
        store.notes.threshold = self.threshold
        if self.records:
            vecs = embedder.embed([r.key for r in self.records])
            store.backend.upsert(store.notes.collection, self.records, vecs)
        return store


class NotebookUpdate(BaseModel):
    """What one gated update did."""

    batch_id: str
    episodes: list[str]
    subjects: list[str]
    """Subject of each failure, in batch order."""
    clusters: list[list[str]]
    """Episode ids of each cluster; one note per cluster."""
    note_ids: list[str]
    """Note written per cluster (a merged note keeps its id)."""
    created: list[str]
    merged: list[str]
    fallback: list[str]
    """Subjects whose note was built from the trajectories because the LLM's was invalid."""
    old_outcomes: list[bool]
    new_outcomes: list[bool]
    wins: int
    losses: int
    kept: bool
    reason: str


Rerun = Callable[[list[FailureCase], NotesView], list[bool]]
"""Re-plays the batch's tasks with the given notes; one success flag per task, in order."""


class MistakeNotebook:
    """Buffers failures and turns each batch into notes that must win a re-run to stay.

    The notebook sets its thresholds on ``notes``: the planner retrieves through the same
    collection object, and merging and retrieval should not depend on who calls. Keep one
    notebook per collection and no other writer during ``update``: a rollback restores the
    touched notes' records as captured, so a vote cast on them meanwhile would be lost.
    """

    def __init__(
        self, notes: TextCollection, llm: LLMClient, params: NotebookParams | None = None
    ) -> None:
        self.notes = notes
        self.llm = llm
        self.params = params or NotebookParams()
        notes.threshold = self.params.retrieve_threshold
        notes.merge_threshold = self.params.merge_threshold
        self._buffer: list[FailureCase] = []

    @property
    def pending(self) -> list[FailureCase]:
        return list(self._buffer)

    @property
    def ready(self) -> bool:
        return len(self._buffer) >= self.params.batch_size

    def record_failure(self, failure: FailureCase) -> bool:
        """Buffer a failed episode; returns whether a full batch is waiting for ``update``."""
        self._buffer.append(failure)
        return self.ready

    def retrieve(self, query: str, k: int | None = None) -> list[MemoryHit]:
        return self.notes.retrieve(query, k or self.params.retrieve_k)

    def view(self) -> NotesView:
        """Every note as it is now."""
        recs = list(self.notes.backend.scan(self.notes.collection))
        return NotesView(records=recs, threshold=self.params.retrieve_threshold)

    def update(self, rerun: Rerun, *, force: bool = False) -> NotebookUpdate:
        """Write notes for the oldest batch, then keep them only if they win the re-run.

        ``force`` runs on a partial batch (e.g. at the end of a run). If the LLM endpoint or
        ``rerun`` raises, the notes are rolled back and the batch goes back to the buffer.
        """
        p = self.params
        if not self._buffer:
            raise ValueError("no failures recorded; nothing to update")
        if not self.ready and not force:
            raise ValueError(
                f"{len(self._buffer)} of {p.batch_size} failures buffered; update needs a "
                "full batch (or force=True)"
            )
        batch = self._buffer[: p.batch_size]
        del self._buffer[: p.batch_size]
        batch_id = new_id("batch")
        old_view = self.view()
        created: list[str] = []
        previous: dict[str, MemoryRecord] = {}
        try:
            subjects = [self._subject(c) for c in batch]
            vecs = self.notes.embedder.embed(subjects)
            clusters = greedy_clusters(vecs, p.cluster_threshold)
            note_ids: list[str] = []
            fallback: list[str] = []
            for members in clusters:
                subject = subjects[members[0]]
                nid, fell_back = self._write(
                    batch_id, subject, [batch[i] for i in members], created, previous
                )
                note_ids.append(nid)
                if fell_back:
                    fallback.append(subject)
            new_view = self.view()
            old = _outcomes(rerun(batch, old_view), len(batch))
            new = _outcomes(rerun(batch, new_view), len(batch))
        except BaseException:
            # Notes that never passed the gate must not stay behind; the batch can be
            # judged again once whatever failed is fixed.
            self._rollback(created, previous)
            self._buffer[:0] = batch
            raise
        wins = sum(n and not o for o, n in zip(old, new, strict=True))
        losses = sum(o and not n for o, n in zip(old, new, strict=True))
        kept = wins - losses >= p.min_wins_margin
        if kept:
            self._annotate([*created, *previous], batch_id, wins, losses)
            reason = f"kept: {wins} win(s), {losses} loss(es) when re-run with the new notes"
        else:
            self._rollback(created, previous)
            reason = (
                f"rolled back: {wins} win(s), {losses} loss(es) when re-run with the new "
                f"notes; a margin of {p.min_wins_margin} is needed"
            )
        return NotebookUpdate(
            batch_id=batch_id,
            episodes=[c.episode_id for c in batch],
            subjects=subjects,
            clusters=[[batch[i].episode_id for i in m] for m in clusters],
            note_ids=note_ids,
            created=created,
            merged=list(previous),
            fallback=fallback,
            old_outcomes=old,
            new_outcomes=new,
            wins=wins,
            losses=losses,
            kept=kept,
            reason=reason,
        )

    # -- writing ------------------------------------------------------------------------

    def _subject(self, case: FailureCase) -> str:
        prompt = (
            f"Name the mistake behind this failed attempt in at most "
            f"{self.params.subject_max_words} words.\n{self._describe(case)}\n"
            'Answer as JSON {"subject": "..."}.\n'
        )
        try:
            raw = self.llm.structured(
                prompt, Subject, max_tokens=self.params.subject_max_tokens
            ).subject
        except InvalidLLMOutput:
            raw = ""
        return clean_subject(raw, case.task, self.params.subject_max_words)

    def _write(
        self,
        batch_id: str,
        subject: str,
        cases: list[FailureCase],
        created: list[str],
        previous: dict[str, MemoryRecord],
    ) -> tuple[str, bool]:
        """Write one cluster's note; record what a rollback must undo."""
        col = self.notes
        task = Counter(c.task for c in cases).most_common(1)[0][0]
        key = note_key(subject, task, self.params.key_task_words)
        # The add below can only merge into the key's nearest record, so capturing that one
        # beforehand is enough to restore whatever the add changes.
        near = col.backend.query(col.collection, col.embedder.embed([key])[0], 1)
        nearest = near[0][0] if near else None
        merging = nearest if near and near[0][1] >= col.merge_threshold else None
        note, fell_back = self._compose(subject, cases, merging)
        old_eps = [str(e) for e in merging.meta.get("episodes", [])] if merging else []
        episodes = list(dict.fromkeys([*old_eps, *(c.episode_id for c in cases)]))
        first = cases[0]
        prov = Provenance(
            episode_id=first.episode_id,
            env_id=first.env_id or None,
            seed=first.seed,
            outcome="failure",
            verifier=GATE_VERIFIER,
        )
        meta = {
            "note": note.model_dump(),
            "batch": batch_id,
            "subject": subject,
            "episodes": episodes[-MAX_EPISODES_PER_NOTE:],
        }
        nid = col.add(key=key, text=render_note(note), provenance=prov, meta=meta)
        if nid not in created:
            if nearest is not None and nid == nearest.id:
                previous.setdefault(nid, nearest)
            else:
                created.append(nid)
        return nid, fell_back

    def _compose(
        self, subject: str, cases: list[FailureCase], existing: MemoryRecord | None
    ) -> tuple[MistakeNote, bool]:
        """The LLM's note, or one built from the trajectories when the LLM's is junk."""
        lines = [
            f"Failed attempts labelled '{subject}'. Write one note that prevents this mistake "
            "next time: what went wrong, the correct approach, a strategy that carries over "
            "to similar tasks, and anti-patterns to avoid."
        ]
        if existing is not None:
            lines.append(f"Current note (revise it, keep what still holds): {existing.text}")
        lines += [f"Attempt {i}:\n{self._describe(c)}" for i, c in enumerate(cases, 1)]
        lines.append(
            'Answer as JSON {"subject": "...", "what_went_wrong": "...", '
            '"correct_approach": "...", "strategy": "...", "anti_patterns": ["..."]}.'
        )
        try:
            raw = self.llm.structured(
                "\n".join(lines) + "\n", MistakeNote, max_tokens=self.params.note_max_tokens
            )
            note = self._clean(raw, subject)
        except InvalidLLMOutput:
            note = None
        if note is not None:
            return note, False
        old = existing.meta.get("note", {}).get("anti_patterns", []) if existing else []
        note = fallback_note(
            subject,
            cases,
            field_max_chars=self.params.field_max_chars,
            max_anti_patterns=self.params.max_anti_patterns,
            keep=[str(a) for a in old],
        )
        return note, True

    def _clean(self, note: MistakeNote, subject: str) -> MistakeNote | None:
        """Clamped copy of the LLM's note, or None when a field says nothing."""
        limit = self.params.field_max_chars
        fields = {
            "what_went_wrong": clip_chars(note.what_went_wrong, limit),
            "correct_approach": clip_chars(note.correct_approach, limit),
            "strategy": clip_chars(note.strategy, limit),
        }
        if any(len(ALPHA.findall(v)) < 2 for v in fields.values()):
            return None
        anti = [clip_chars(a, limit // 2) for a in note.anti_patterns if ALPHA.search(a)]
        return MistakeNote(
            subject=subject,
            anti_patterns=unique(anti)[: self.params.max_anti_patterns],
            **fields,
        )

    def _describe(self, case: FailureCase) -> str:
        p = self.params
        shown = case.actions[-p.prompt_actions :]
        actions = " > ".join(shown) or "(none)"
        if len(shown) < len(case.actions):
            actions = "... > " + actions
        lines = [
            f"Task: {squash(case.task)}",
            f"Actions: {actions}",
            f"Result: score {case.score:g}/{case.max_score:g}; last observation: "
            f"{clip_chars(case.final_observation, p.observation_chars)}",
        ]
        if case.reflections:
            lines.append("Reflections: " + " ".join(squash(r) for r in case.reflections))
        return "\n".join(lines)

    # -- gate -----------------------------------------------------------------------------

    def _rollback(self, created: list[str], previous: dict[str, MemoryRecord]) -> None:
        col = self.notes
        if created:
            col.backend.delete(col.collection, created)
        if previous:
            # Merging never changes a key, so the stored embeddings are still right.
            col.backend.update(col.collection, list(previous.values()))

    def _annotate(self, ids: list[str], batch_id: str, wins: int, losses: int) -> None:
        col = self.notes
        recs = col.backend.get(col.collection, ids)
        for rec in recs:
            rec.meta["gate"] = {"batch": batch_id, "wins": wins, "losses": losses}
            rec.provenance.updated_at = time.time()
        col.backend.update(col.collection, recs)


def _outcomes(got: list[bool], n: int) -> list[bool]:
    if len(got) != n:
        raise ValueError(f"rerun returned {len(got)} outcomes for a batch of {n} tasks")
    return [bool(x) for x in got]
