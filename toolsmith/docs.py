"""Docs refined from use (after DRAFT): failures and misuse rewrite a tool's doc.

Every use is classified (worked, first step not admissible, stopped early, no reward, error)
and kept on the tool. After ``every`` failures the doc is rewritten as a new version (the
version history keeps the old one): by the LLM when one is given and its answer passes junk
checks, always with the observed contexts appended as ``Fails when:`` / ``Works when:``.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from agent.errors import InvalidLLMOutput
from agent.llm.base import LLMClient
from toolsmith.models import Tool, ToolFeedback, ToolUse
from toolsmith.registry import ToolRegistry

FAILS = "Fails when: "
WORKS = "Works when: "
SEP = " | "
CONTEXT_CHARS = 80
KEEP_FAILS = 4
KEEP_WORKS = 2


class DocRewrite(BaseModel):
    """The LLM's answer: one better description (its length is checked by ``junk_reason``;
    a ``maxLength`` in the schema would blow up llama.cpp's grammar)."""

    doc: str


def clip(text: str, n: int = CONTEXT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def classify(use: ToolUse) -> ToolFeedback:
    """What one use says about the tool."""
    ctx = clip(use.context)
    if use.error:
        return ToolFeedback(kind="error", detail=f"error: {clip(use.error)}", context=ctx)
    if not use.actions_run:
        first = use.planned[0] if use.planned else "its first step"
        return ToolFeedback(
            kind="not_admissible", detail=f"{first!r} was not admissible", context=ctx
        )
    if use.lost:
        last = use.actions_run[-1]
        return ToolFeedback(kind="lost", detail=f"the game was lost after {last!r}", context=ctx)
    if use.guarded is not None:
        n, total = len(use.actions_run), len(use.planned)
        return ToolFeedback(
            kind="stopped_early",
            detail=f"stopped after {n}/{total} steps: the learned values ranked "
            f"{use.guarded!r} below their best",
            context=ctx,
        )
    if not use.completed:
        n, total = len(use.actions_run), len(use.planned)
        nxt = use.planned[n] if n < total else "the next step"
        return ToolFeedback(
            kind="stopped_early",
            detail=f"stopped after {n}/{total or '?'} steps: {nxt!r} could not run",
            context=ctx,
        )
    if use.reward <= 0:
        return ToolFeedback(kind="no_reward", detail="ran without reward", context=ctx)
    return ToolFeedback(kind="worked", detail=f"ran with reward {use.reward:g}", context=ctx)


def split_doc(doc: str) -> tuple[str, list[str], list[str]]:
    """(base doc, earlier fails-when items, earlier works-when items)."""
    base, fails, works = [], [], []
    for line in doc.splitlines():
        if line.startswith(FAILS):
            fails += [s for s in line[len(FAILS) :].split(SEP) if s]
        elif line.startswith(WORKS):
            works += [s for s in line[len(WORKS) :].split(SEP) if s]
        else:
            base.append(line)
    return "\n".join(base).strip(), fails, works


def _item(f: ToolFeedback) -> str:
    return f"{f.detail} (at: {f.context})" if f.context else f.detail


def rules_doc(tool: Tool, base: str | None = None) -> str:
    """LLM-free rewrite: the base doc plus what was observed, newest kept."""
    old_base, old_fails, old_works = split_doc(tool.doc)
    # Newest first: the new observations (newest last on the tool), then the doc's items.
    fails = [_item(f) for f in reversed(tool.feedback) if tool.counts_as_failure(f)]
    fails += old_fails
    works = [_item(f) for f in reversed(tool.feedback) if not f.failed] + old_works
    fails = list(dict.fromkeys(fails))[:KEEP_FAILS]
    works = list(dict.fromkeys(works))[:KEEP_WORKS]
    lines = [base or old_base]
    if fails:
        lines.append(FAILS + SEP.join(fails))
    if works:
        lines.append(WORKS + SEP.join(works))
    return "\n".join(line for line in lines if line)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{3,}", text.lower())}


def junk_reason(candidate: str, tool: Tool) -> str | None:
    """Why an LLM-written doc is not usable, or None."""
    text = " ".join(candidate.split())
    if not 15 <= len(text) <= 300:
        return f"length {len(text)} outside 15-300"
    if len(text.split()) < 3:
        return "fewer than 3 words"
    chars = [c for c in text if not c.isspace()]
    if sum(c.isalpha() for c in chars) < 0.6 * len(chars):
        return "mostly not letters"
    if text == " ".join(split_doc(tool.doc)[0].split()):
        return "unchanged"
    topic = _words(tool.name + " " + " ".join(tool.steps) + " " + split_doc(tool.doc)[0])
    if not _words(text) & topic:
        return "says nothing about the tool"
    return None


def doc_prompt(tool: Tool) -> str:
    _, fails, works = split_doc(rules_doc(tool))
    body = "\n".join(f"  {s}" for s in tool.steps) if tool.steps else (tool.code or "")[:400]
    return (
        "Rewrite the description of a tool an agent uses in a text game, so the agent "
        "knows when to use it and when not to.\n"
        f"Tool: {tool.name}\nBody:\n{body}\n"
        f"Current description: {split_doc(tool.doc)[0]}\n"
        f"It failed: {'; '.join(fails) or 'never'}\n"
        f"It worked: {'; '.join(works) or 'never'}\n"
        "Better description (JSON):\n"
    )


def refine_doc(
    registry: ToolRegistry, name: str, llm: LLMClient | None = None, every: int = 3
) -> Tool | None:
    """Rewrite ``name``'s doc as a new version once it has ``every`` pending failures;
    returns the new version, or None when it is not due or the doc would not change."""
    with registry.atomic():
        tool = registry.get(name)
        if tool is None or every <= 0 or tool.pending_failures < every:
            return None
    # The LLM call happens outside the transaction: it can take seconds.
    base, how = None, "rules"
    if llm is not None:
        try:
            answer = llm.structured(doc_prompt(tool), DocRewrite, max_tokens=120).doc
            why = junk_reason(answer, tool)
            base, how = (None, f"rules; LLM answer rejected: {why}") if why else (answer, "llm")
        except InvalidLLMOutput as e:
            how = f"rules; LLM answer invalid: {clip(str(e), 60)}"
    doc = rules_doc(tool, " ".join(base.split()) if base else None)
    change = f"doc refined from {tool.pending_failures} failures ({how})"
    with registry.atomic():
        current = registry.get(name)
        if current is None or current.version != tool.version:
            return None  # someone else revised it meanwhile
        if doc == current.doc:
            # Nothing new was learned: no new version, the uses are consumed.
            registry.put(current.model_copy(update={"feedback": []}))
            return None
        return registry.revise(name, change, doc=doc, feedback=[])
