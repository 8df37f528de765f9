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

Chromium runs through two wrapper scripts (``chromium.py``) under ``<games_dir>/chromium``
(the flags for headless use on a server, ``XDG_*`` folders the project owns, and ``setsid``
so that ChromeDriver and every browser process share one session); ``close()`` stops that whole
session, and envs still open at interpreter exit are closed then. A process killed by a
signal leaves its browser running. Needs the Debian packages ``chromium chromium-driver``
(``MINIWOB_CHROME_BINARY`` and ``MINIWOB_CHROMEDRIVER`` may name another Chrome and its
driver). ``miniwob`` and ``selenium`` are imported only when a browser starts.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import weakref
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, EvolventError
from benchmarks.envs import procs
from benchmarks.envs.base import Env, Family, Observation, StepInfo, StepResult
from benchmarks.envs.chromium import APT_HINT, browser_environ, browser_scripts
from benchmarks.envs.miniwob_page import Page

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
_ENDED_REPLY = "The episode has ended."
_RUNNING: weakref.WeakSet[MiniWoBEnv] = weakref.WeakSet()
"""Envs with a browser: closed at exit (ChromeDriver's own session outlives this process)."""


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
        self._page: Page | None = None
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
            with browser_environ(chrome_sh, driver_sh):
                env = MiniWoBEnvironment(subdomain=self._task, action_space_config=config)
        except Exception as exc:
            detail = " ".join(str(exc).split())[:300]
            raise EvolventError(
                f"cannot start Chromium for MiniWoB++ ({detail}); {APT_HINT}"
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
        self._page = Page(obs["dom_elements"], obs["fields"])
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
            self._page = Page([], [])
            return StepResult(text=text, admissible=[], reward=score, done=True, info=self._info)
        self._page = Page(obs["dom_elements"], obs["fields"])
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
