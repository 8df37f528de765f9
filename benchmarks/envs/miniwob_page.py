"""A MiniWoB++ DOM snapshot as text and admissible actions (see ``miniwob_env``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LABEL_MAX = 40
_STRUCTURAL_IDS = frozenset({"wrap", "area"})
"""miniwob's layout containers around every task: clicking them is never an action."""
_TEXTBOX_TYPES = frozenset(
    {"text", "password", "email", "number", "search", "tel", "url", "date", "time"}
)
_INPUT_KINDS = frozenset({"checkbox", "radio", "textbox", "dropdown"})


@dataclass(frozen=True)
class _Element:
    ref: int
    parent: int
    tag: str
    text: str
    value: str
    id: str
    classes: str
    focused: bool

    @property
    def kind(self) -> str:
        """What the element is, in the words the actions use."""
        if self.tag.startswith("input_"):
            kind = self.tag.removeprefix("input_")
            if kind in _TEXTBOX_TYPES:
                return "textbox"
            return "button" if kind in ("button", "submit", "reset") else kind
        return {"a": "link", "select": "dropdown", "textarea": "textbox", "t": "text"}.get(
            self.tag, self.tag
        )


@dataclass(frozen=True)
class _Action:
    ref: int
    text: str | None = None
    """What to type after clicking the element; None for a click."""


def _element(raw: dict[str, Any]) -> _Element:
    flags = raw.get("flags")
    return _Element(
        ref=int(raw["ref"]),
        parent=int(raw["parent"]),
        tag=str(raw["tag"]).lower(),
        text=" ".join(str(raw.get("text") or "").split()),
        value=str(raw.get("value") or ""),
        id=str(raw.get("id") or ""),
        classes=str(raw.get("classes") or ""),
        focused=bool(flags is not None and flags[0]),
    )


def short(text: str) -> str:
    text = " ".join(text.replace('"', "'").split())
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 3].rstrip() + "..."


class Page:
    """One DOM snapshot: its rendering and its admissible actions."""

    def __init__(self, raw_elements: Sequence[dict[str, Any]], fields: Sequence[Any]) -> None:
        self.elements = [_element(raw) for raw in raw_elements]
        self.fields = [(str(key), str(value)) for key, value in fields]
        self.by_ref = {element.ref: element for element in self.elements}
        self.children: dict[int, list[_Element]] = {}
        for element in self.elements:
            self.children.setdefault(element.parent, []).append(element)
        self.labels: dict[int, str] = {}
        """Each element's name; a <label> naming an input is folded into the input."""
        self.folded: set[int] = set()
        for element in self.elements:
            self.labels[element.ref] = self._label(element)
        self.actions: dict[str, _Action] = {}
        self._build_actions()

    def _own_text(self, element: _Element) -> str:
        """The element's text, or the text of its text pieces."""
        if element.text:
            return element.text
        pieces = [c.text for c in self.children.get(element.ref, []) if c.tag == "t"]
        return " ".join(pieces)

    def _label(self, element: _Element) -> str:
        """The element's name; marks the <label> (and its text) it takes it from as folded."""
        kind = element.kind
        if kind in _INPUT_KINDS:
            parent = self.by_ref.get(element.parent)
            if parent is not None and parent.tag == "label" and self._own_text(parent):
                self.folded.update(e.ref for e in [parent, *self.children[parent.ref]])
                self.folded.discard(element.ref)
                return self._own_text(parent)
        if kind in ("checkbox", "radio"):  # a checkbox's text follows it
            siblings = self.children[element.parent]
            for sibling in siblings[siblings.index(element) + 1 :]:
                if self._has_input(sibling):
                    break
                if sibling.text:
                    self._fold(sibling)
                    return sibling.text
            return element.id
        if kind in ("textbox", "dropdown"):  # a textbox's label comes before it
            return self._text_before(element) or element.id
        if kind == "button" and element.tag.startswith("input_"):
            return element.value or element.id
        if self._is_icon(element):
            name = element.id or element.classes.split()[0]
            context = self._context(element)
            return f"{name} ({context})" if context else name
        return self._own_text(element) or element.id

    def _fold(self, label: _Element) -> None:
        """Show a label only as its input's name (not a <div> that may be a click target)."""
        if label.tag in ("label", "t") or "label" in label.classes.split():
            self.folded.add(label.ref)

    def _has_input(self, element: _Element) -> bool:
        if element.kind in _INPUT_KINDS or element.kind == "button":
            return True
        return any(self._has_input(child) for child in self.children.get(element.ref, []))

    def _text_before(self, element: _Element) -> str:
        """The nearest text before the element, in it wrapper or its wrapper's wrapper."""
        node = element
        for _ in range(3):
            siblings = self.children[node.parent]
            for sibling in reversed(siblings[: siblings.index(node)]):
                if self._has_input(sibling):
                    return ""
                if text := self._own_text(sibling):
                    self._fold(sibling)
                    return text
            parent = self.by_ref.get(node.parent)
            if parent is None or parent.id in _STRUCTURAL_IDS:
                return ""
            node = parent
        return ""

    def _is_icon(self, element: _Element) -> bool:
        """A text-less leaf with a name (``<span class="trash">``): an icon to click."""
        return (
            element.ref > 0
            and not element.text
            and element.ref not in self.children
            and element.tag not in ("t", "br", "hr", "img")
            and bool(element.id or element.classes.split())
        )

    def _context(self, element: _Element) -> str:
        """The first text of the nearest enclosing block that has text (an icon's row)."""
        ancestors: dict[int, list[int]] = {}
        for other in self.elements:  # page order: parents come before their children
            ancestors[other.ref] = [other.parent, *ancestors.get(other.parent, [])]
        for ancestor in ancestors[element.ref]:
            block = self.by_ref.get(ancestor)
            if block is None or block.id in _STRUCTURAL_IDS:
                return ""
            for other in self.elements:
                if other.text and ancestor in ancestors[other.ref]:
                    return short(other.text)
        return ""

    def _clickable(self, element: _Element) -> bool:
        if element.ref <= 0 or element.tag == "body" or element.id in _STRUCTURAL_IDS:
            return False
        if element.ref in self.folded:
            return False
        if element.kind != element.tag or element.tag in ("button", "label", "option"):
            return True  # an input, link, dropdown or textbox
        return bool(self._own_text(element)) or self._is_icon(element)

    def _add(self, action: str, target: _Action) -> None:
        name, count = action, 1
        while name in self.actions:
            count += 1
            name = f"{action} ({count})"
        self.actions[name] = target

    def _build_actions(self) -> None:
        values = list(dict.fromkeys(value for _, value in self.fields if value))
        for element in self.elements:
            if not self._clickable(element):
                continue
            label = short(self.labels[element.ref])
            described = f'{element.kind} "{label}"' if label else element.kind
            self._add(f"click {described}", _Action(element.ref))
            if element.kind == "textbox":
                for value in values:
                    self._add(
                        f'type "{short(value)}" into {described}', _Action(element.ref, value)
                    )

    def render(self) -> str:
        """The visible elements, one a line, then the fields."""
        lines = []
        for element in self.elements:
            kind = element.kind
            if element.ref in self.folded:
                continue
            if element.tag == "t":
                lines.append(f'text "{element.text}"')
                continue
            if not self._clickable(element) and not element.text:
                continue
            label = self.labels[element.ref]
            line = f"[{element.ref}] {kind}" + (f' "{label}"' if label else "")
            if kind in ("checkbox", "radio"):
                line += " (checked)" if element.value == "True" else ""
            elif kind == "textbox":
                line += f' value="{element.value}"'
            if element.focused:
                line += " (focused)"
            lines.append(line)
        if self.fields:
            lines.append("fields: " + ", ".join(f"{k}={v}" for k, v in self.fields))
        return "\n".join(lines)
