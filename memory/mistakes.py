"""The mistake notebook's data: failed episodes, subjects, notes, and the LLM-free parts
(cleaning a tuner's label, a note built from trajectories alone, a note's prompt text).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field, StringConstraints

from memory.grouping import clip_chars, squash, unique

if TYPE_CHECKING:
    from agent.result import EpisodeResult

_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")
ALPHA = re.compile(r"[A-Za-z]{2,}")

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class FailureCase(BaseModel):
    """A failed episode as the notebook sees it."""

    episode_id: str
    env_id: str = ""
    seed: int = 0
    task: str
    actions: list[str] = Field(default_factory=list)
    """Environment actions in the order taken."""
    final_observation: str = ""
    score: float = 0.0
    max_score: float = 0.0
    reflections: list[str] = Field(default_factory=list)

    @classmethod
    def from_result(cls, result: EpisodeResult) -> FailureCase:
        steps = result.trajectory
        return cls(
            episode_id=result.thread_id,
            env_id=result.env,
            seed=result.seed,
            task=result.task,
            actions=[s.action for s in steps if s.action],
            final_observation=steps[-1].observation if steps else "",
            score=result.score,
            max_score=result.max_score,
            reflections=list(result.reflections),
        )


class Subject(BaseModel):
    """The tuner's label of one failure."""

    subject: str = Field(description="The kind of mistake, in at most 8 words.")


class MistakeNote(BaseModel):
    """One note per cluster of similar failures."""

    subject: str = ""
    what_went_wrong: Text
    correct_approach: Text
    strategy: Text
    """A rule that carries over to other tasks of the kind."""
    anti_patterns: list[str] = Field(default_factory=list)


def clean_subject(raw: str, task: str, max_words: int) -> str:
    """The tuner's label as at most ``max_words`` lower-case words; the task's first words
    when the label is junk (a base model often repeats itself or answers with symbols)."""
    words = _WORD.findall(raw.lower())
    words = [w for i, w in enumerate(words) if i == 0 or w != words[i - 1]]
    if len({w for w in words if ALPHA.fullmatch(w)}) < 2:
        words = _WORD.findall(task.lower())
    return " ".join(words[:max_words]) or "unlabelled failure"


def fallback_note(
    subject: str,
    cases: list[FailureCase],
    *,
    field_max_chars: int = 240,
    max_anti_patterns: int = 4,
    keep: list[str] | None = None,
) -> MistakeNote:
    """An LLM-free note from the trajectories: actions repeated without effect and the last
    actions before failing; ``keep`` are anti-patterns of the note being revised."""
    repeated: Counter[str] = Counter()
    for c in cases:
        for action, n in Counter(c.actions).items():
            if n >= 3:
                repeated[action] = max(repeated[action], n)
    loops = sorted(repeated.items(), key=lambda kv: (-kv[1], kv[0]))
    best = max(cases, key=lambda c: c.score / c.max_score if c.max_score else c.score)
    last = cases[0].actions[-3:]
    wrong = [f"{len(cases)} attempt(s) failed (best score {best.score:g}/{best.max_score:g})"]
    if loops:
        wrong.append("repeated " + ", ".join(f"'{a}' {n} times" for a, n in loops[:3]))
    if last:
        wrong.append("last actions: " + " > ".join(last))
    reflections = unique([squash(r) for c in cases for r in c.reflections])
    correct = " ".join(reflections[:2]) or (
        "Re-read the goal and the last observation, then take an untried action that "
        "makes progress."
    )
    anti = [f"repeating '{a}'" for a, _ in loops]
    if last:
        anti.append(f"ending with '{last[-1]}' without progress")
    limit = field_max_chars
    return MistakeNote(
        subject=subject,
        what_went_wrong=clip_chars("; ".join(wrong), limit),
        correct_approach=clip_chars(correct, limit),
        strategy=(
            "When an action leaves the situation unchanged, do not repeat it; switch to an "
            "untried action that moves toward the goal."
        ),
        anti_patterns=unique([clip_chars(a, limit // 2) for a in [*anti, *(keep or [])]])[
            :max_anti_patterns
        ],
    )


def render_note(note: MistakeNote) -> str:
    """The note as one prompt line."""
    parts = [
        f"{note.subject}: {note.what_went_wrong}",
        f"Instead: {note.correct_approach}",
        f"Rule: {note.strategy}",
    ]
    if note.anti_patterns:
        parts.append("Avoid: " + "; ".join(note.anti_patterns))
    return " ".join(p if p.endswith((".", "!", "?")) else p + "." for p in parts)
