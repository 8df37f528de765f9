"""MiniWoB++ web tasks (``miniwob:<task>``) in headless Chromium, behind the ``Env`` protocol.

The task is miniwob's utterance. The observation is the task's visible DOM, one element a
line (``[ref] kind "label"``, with input values, ``(checked)`` and ``(focused)``), followed by
the fields miniwob extracts from the utterance. The admissible actions are a finite list of
short strings: ``click <kind> "<label>"`` for every clickable visible element (inputs,
buttons, links, elements with text of their own, named icons such as ``span "trash
(Coletta)"``), and ``type "<value>" into textbox "<label>"`` for every text input and every
field value of the utterance (typing replaces the input's content). A checkbox or textbox
takes its label's text as its name. Identical strings get a ``(2)``, ``(3)`` suffix in page
order. The seed seeds the page's random generator (``Math.seedrandom``) at every reset.

Scoring follows BrowserGym's MiniWoB set-up rather than miniwob's gym default: the episode
timer is pushed out of reach and the reward is miniwob's *raw* reward (no time penalty), so
that an episode's outcome depends on the actions only, not on how fast the LLM is, and a
replay after a crash reaches the same state. The episode ends when miniwob says so: a raw
reward of 1 wins; partial credit (click-checkboxes*) counts in the score (negative raw
rewards count 0) but loses. ``info.extra`` keeps ``raw_reward`` and miniwob's ``reason``.

Chromium runs through two wrapper scripts written under ``<games_dir>/chromium`` (the flags
for headless use on a server, ``XDG_*`` folders the project owns, and ``setsid`` so that
ChromeDriver and every browser process share one session); ``close()`` stops that whole
session, and envs still open at interpreter exit are closed then. A process killed by a
signal leaves its browser running. Needs the Debian packages ``chromium chromium-driver``
(``MINIWOB_CHROME_BINARY`` and ``MINIWOB_CHROMEDRIVER`` may name another Chrome and its
driver). ``miniwob`` and ``selenium`` are imported only when a browser starts.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import shutil
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, EvolventError
from benchmarks.envs import procs
from benchmarks.envs.base import Env, Family, Observation, StepInfo, StepResult

TASKS: tuple[str, ...] = (
    "click-button",
    "click-button-sequence",
    "click-checkboxes",
    "click-checkboxes-large",
    "click-checkboxes-soft",
    "click-checkboxes-transfer",
    "click-collapsible-2-nodelay",
    "click-collapsible-nodelay",
    "click-link",
    "click-option",
    "click-tab",
    "click-tab-2",
    "click-tab-2-easy",
    "click-tab-2-hard",
    "click-tab-2-medium",
    "click-test",
    "click-test-2",
    "click-test-transfer",
    "click-widget",
    "email-inbox",
    "email-inbox-delete",
    "email-inbox-forward",
    "email-inbox-forward-nl",
    "email-inbox-forward-nl-turk",
    "email-inbox-important",
    "email-inbox-nl-turk",
    "email-inbox-noscroll",
    "email-inbox-reply",
    "email-inbox-star-reply",
    "enter-password",
    "enter-text",
    "enter-text-dynamic",
    "focus-text",
    "focus-text-2",
    "form-sequence-2",
    "form-sequence-3",
    "login-user",
    "multi-layouts",
    "multi-orderings",
    "navigate-tree",
    "sign-agreement",
    "unicode-test",
)
"""The MiniWoB++ tasks supported: those miniwob 1.1.0 marks deterministic whose solution
these actions can express (element clicks, typing the utterance's field values) from what
the observation shows; each was won by a scripted or searched action sequence on seeds 1
and 2. Left out: drag/draw/coordinate tasks, tasks whose typed text is not a field value
(enter-text-2, enter-date, enter-time, read-table, find-word, arithmetic, autocomplete),
hover menus (click-menu*), <select> lists (choose-list), shapes and colours known only from
pixels (count-sides, identify-shape, click-shape, click-color), login-user-popup, and the
animated click-collapsible and click-collapsible-2 (what a step shows depends on timing; their
-nodelay twins are here)."""

DEFAULT_TASKS: tuple[str, ...] = (
    "click-button",
    "click-link",
    "click-checkboxes",
    "enter-text",
    "login-user",
)
"""The benchmark's five tasks, shortest first (1, 1, 2+, 2 and 3 steps): in each, the
utterance quotes or lists the text of every right action and the page offers a handful of
actions, so a small model choosing among them can win; random choice mostly loses (unlike
focus-text, whose one action cannot tell agents apart)."""

_CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
_CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_APT_HINT = (
    "install the Debian packages `chromium chromium-driver` (apt-get install chromium "
    "chromium-driver) or set MINIWOB_CHROME_BINARY and MINIWOB_CHROMEDRIVER"
)
# setTimeout's delay is a signed 32-bit number of ms; anything larger fires at once.
_EPISODE_MAX_MS = 1_000_000_000
_NO_TIMEOUT_JS = (
    f"core.EPISODE_MAX_TIME = {_EPISODE_MAX_MS};"
    "if (core.EP_TIMER !== null) { clearTimeout(core.EP_TIMER); core.EP_TIMER = setTimeout("
    f"function () {{ core.endEpisode(-1, false, 'timed out'); }}, {_EPISODE_MAX_MS}); }}"
)
# miniwob reuses the page across episodes: the element clicked last would still have the
# focus (and show "(focused)") in the next episode, so a reset would depend on the past.
_BEFORE_RESET_JS = "if (document.activeElement) { document.activeElement.blur(); }" + _NO_TIMEOUT_JS
_LABEL_MAX = 40
_STRUCTURAL_IDS = frozenset({"wrap", "area"})
"""miniwob's layout containers around every task: clicking them is never an action."""
_TEXTBOX_TYPES = frozenset(
    {"text", "password", "email", "number", "search", "tel", "url", "date", "time"}
)
_INPUT_KINDS = frozenset({"checkbox", "radio", "textbox", "dropdown"})
_ENDED_REPLY = "The episode has ended."
_ENV_LOCK = threading.RLock()
"""miniwob reads the browser paths from os.environ while it starts one (set to the wrappers,
which must not be taken for the user's own paths meanwhile)."""
_RUNNING: weakref.WeakSet[MiniWoBEnv] = weakref.WeakSet()
"""Envs with a browser: closed at exit (ChromeDriver's own session outlives this process)."""


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


def _short(text: str) -> str:
    text = " ".join(text.replace('"', "'").split())
    return text if len(text) <= _LABEL_MAX else text[: _LABEL_MAX - 3].rstrip() + "..."


class _Page:
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
                    return _short(other.text)
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
            label = _short(self.labels[element.ref])
            described = f'{element.kind} "{label}"' if label else element.kind
            self._add(f"click {described}", _Action(element.ref))
            if element.kind == "textbox":
                for value in values:
                    self._add(
                        f'type "{_short(value)}" into {described}', _Action(element.ref, value)
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


def _find_browser() -> tuple[str, str]:
    """Paths to a Chrome binary and its ChromeDriver; ConfigError naming the apt packages."""
    chrome = os.environ.get("MINIWOB_CHROME_BINARY") or next(
        (path for name in _CHROME_NAMES if (path := shutil.which(name))), None
    )
    driver = os.environ.get("MINIWOB_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [
        name
        for name, path in (("chromium", chrome), ("chromedriver", driver))
        if not path or not os.access(path, os.X_OK)
    ]
    if missing or chrome is None or driver is None:
        raise ConfigError(f"MiniWoB++ needs {' and '.join(missing)}: {_APT_HINT}")
    return chrome, driver


def _write_script(path: Path, text: str) -> None:
    """Write an executable script atomically (concurrent envs write the same text)."""
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(text)
    tmp.chmod(0o755)
    tmp.replace(path)


def browser_scripts(root: Path) -> tuple[Path, Path]:
    """Write (or reuse) the Chromium and ChromeDriver wrapper scripts under ``root``."""
    with _ENV_LOCK:
        chrome, driver = _find_browser()
    root.mkdir(parents=True, exist_ok=True)
    xdg = {name: root / "xdg" / name.lower() for name in ("CONFIG", "CACHE")}
    for folder in xdg.values():
        folder.mkdir(parents=True, exist_ok=True)
    exports = "".join(
        f"export XDG_{name}_HOME={shlex.quote(str(folder))}\n" for name, folder in xdg.items()
    )
    flags = " ".join(_CHROME_FLAGS)
    header = "#!/bin/sh\n# Written by Evolvent (benchmarks/envs/miniwob_env.py).\n"
    chrome_sh = root / "chromium.sh"
    _write_script(chrome_sh, f'{header}{exports}exec {shlex.quote(chrome)} {flags} "$@"\n')
    # ChromeDriver leads a session of its own: close() stops everything in it.
    setsid = "setsid " if shutil.which("setsid") else ""
    driver_sh = root / "chromedriver.sh"
    _write_script(driver_sh, f'{header}exec {setsid}{shlex.quote(driver)} "$@"\n')
    return chrome_sh, driver_sh


@contextlib.contextmanager
def _browser_environ(chrome_sh: Path, driver_sh: Path) -> Iterator[None]:
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in ("MINIWOB_CHROME_BINARY", "MINIWOB_CHROMEDRIVER")}
        os.environ["MINIWOB_CHROME_BINARY"] = str(chrome_sh)
        os.environ["MINIWOB_CHROMEDRIVER"] = str(driver_sh)
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


class MiniWoBEnv:
    """One MiniWoB++ task; ``seed`` seeds the page's random generator at every reset.

    Chromium starts on the first ``reset()`` (about 2 s) and serves every later reset;
    ``close()`` stops it and every process it started.
    """

    def __init__(self, task: str, seed: int, games_dir: Path) -> None:
        if task not in TASKS:
            raise ConfigError(f"unknown MiniWoB++ task {task!r}; supported: {', '.join(TASKS)}")
        self._task = task
        self._seed = seed
        self._root = Path(games_dir) / "chromium"
        self._env: Any = None
        self._sid: int | None = None
        self._driver_process: Any = None
        self._page: _Page | None = None
        self._info = StepInfo()
        self._done = False

    @property
    def env_id(self) -> str:
        return f"miniwob:{self._task}"

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def task(self) -> str:
        return self._task

    def browser_pids(self) -> list[int]:
        """The live ChromeDriver and Chromium processes of this env (none before reset)."""
        return procs.session_pids(self._sid) if self._sid is not None else []

    def _start(self) -> Any:
        if self._env is not None and not self._env.instance.died:
            return self._env
        self.close()
        chrome_sh, driver_sh = browser_scripts(self._root)
        try:
            from miniwob.action import ActionSpaceConfig, ActionTypes
            from miniwob.environment import MiniWoBEnvironment
        except ImportError as exc:
            raise ConfigError(
                f"MiniWoB++ needs the python package miniwob ({exc}): pip install -e '.[envs]'"
            ) from exc
        config = ActionSpaceConfig(
            action_types=[ActionTypes.CLICK_ELEMENT, ActionTypes.FOCUS_ELEMENT_AND_TYPE_TEXT]
        )
        try:
            with _browser_environ(chrome_sh, driver_sh):
                env = MiniWoBEnvironment(subdomain=self._task, action_space_config=config)
        except Exception as exc:
            detail = " ".join(str(exc).split())[:300]
            raise EvolventError(
                f"cannot start Chromium for MiniWoB++ ({detail}); {_APT_HINT}"
            ) from exc
        self._env = env
        _RUNNING.add(self)
        self._driver_process = env.instance.driver.service.process
        self._sid = os.getsid(self._driver_process.pid) if self._driver_process else None
        env.instance.record_screenshots = False
        return env

    def reset(self) -> Observation:
        env = self._start()
        env.instance.driver.execute_script(_BEFORE_RESET_JS)
        obs, _ = env.reset(seed=self._seed)
        env.instance.driver.execute_script(_NO_TIMEOUT_JS)  # in case the task set its own
        self._done = False
        self._info = StepInfo()
        self._page = _Page(obs["dom_elements"], obs["fields"])
        return Observation(
            task=str(obs["utterance"]),
            text=self._page.render(),
            admissible=list(self._page.actions),
            info=self._info.model_copy(),
        )

    def step(self, action: str) -> StepResult:
        if self._env is None or self._page is None:
            raise RuntimeError("MiniWoBEnv.step() called before reset()")
        if self._done:
            return self._reply(_ENDED_REPLY)
        target = self._page.actions.get(" ".join(action.split()))
        if target is None:
            return self._reply(f"Unknown action {action!r}: choose one of the admissible actions.")
        env = self._env
        if target.text is None:
            miniwob_action = env.create_action("CLICK_ELEMENT", ref=target.ref)
        else:
            # Typing replaces the content: clear the input first (miniwob only appends keys).
            env.instance.driver.execute_script(
                "var e = core.previousDOMInfo[arguments[0]]; if (e && 'value' in e) e.value = '';",
                target.ref,
            )
            miniwob_action = env.create_action(
                "FOCUS_ELEMENT_AND_TYPE_TEXT", ref=target.ref, text=target.text
            )
        obs, _, done, _, info = env.step(miniwob_action)
        self._done = bool(done)
        if self._done:
            raw = float(info.get("raw_reward") or 0.0)
            score = max(raw, 0.0)
            reason = info.get("reason")
            self._info = StepInfo(
                score=score,
                max_score=1.0,
                won=raw >= 1.0,
                lost=raw < 1.0,
                extra={"raw_reward": raw, "reason": str(reason) if reason is not None else ""},
            )
            text = f"The episode has ended: reward {raw:g}" + (f" ({reason})." if reason else ".")
            self._page = _Page([], [])
            return StepResult(text=text, admissible=[], reward=score, done=True, info=self._info)
        self._page = _Page(obs["dom_elements"], obs["fields"])
        return StepResult(
            text=self._page.render(),
            admissible=list(self._page.actions),
            reward=0.0,
            done=False,
            info=self._info.model_copy(),
        )

    def _reply(self, text: str) -> StepResult:
        """An answer that leaves the page untouched (ended episode, unknown action)."""
        return StepResult(
            text=text,
            admissible=list(self._page.actions) if self._page else [],
            reward=0.0,
            done=self._done,
            info=self._info.model_copy(),
        )

    def close(self) -> None:
        env, self._env = self._env, None
        sid, self._sid = self._sid, None
        process, self._driver_process = self._driver_process, None
        if env is not None:
            with contextlib.suppress(Exception):  # a dead browser is what close() wants
                env.close()
        if sid is not None:
            procs.stop(lambda: procs.session_pids(sid))
        if process is not None:
            with contextlib.suppress(Exception):
                process.wait(timeout=5)  # reap ChromeDriver: no zombie left behind


@atexit.register
def _close_all() -> None:
    for env in list(_RUNNING):
        env.close()


def make(task: str, seed: int, games_dir: Path) -> Env:
    """``Family.make`` for ``miniwob:<task>``."""
    return MiniWoBEnv(task, seed, games_dir)


FAMILY = Family(
    prefix="miniwob",
    names=TASKS,
    make=make,
    name_label="task",
    summary=(
        "MiniWoB++ web tasks in headless Chromium (click/type actions on the DOM); "
        "needs apt chromium chromium-driver"
    ),
)
