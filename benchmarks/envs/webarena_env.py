"""WebArena via BrowserGym (``webarena:task``; the seed is the WebArena task id, 0–811).

WebArena's websites are servers you host yourself (see the WebArena and BrowserGym docs);
this adapter only drives them. Before building an environment, set the URLs BrowserGym
reads, all seven::

    WA_SHOPPING, WA_SHOPPING_ADMIN, WA_REDDIT, WA_GITLAB, WA_WIKIPEDIA, WA_MAP, WA_HOMEPAGE

(``WA_FULL_RESET`` optionally names the instance-reset endpoint), and install
``browsergym-webarena==0.14.3`` (it brings ``libwebarena``; on import it fetches NLTK's
``punkt_tab`` tokenizer unless ``python -m nltk.downloader punkt_tab`` put it there already).
Without the URLs, building the environment raises a ``ConfigError`` naming the missing ones.

* observation: BrowserGym's accessibility tree as text (visible nodes, each with its bid),
  after the page URL and the last action's error, if any;
* admissible actions, a finite list: ``click [bid] role "name"`` for every visible clickable
  node, ``fill [bid] role "name" with "value"`` for every visible text field and every value
  taken from the intent (quoted strings, capitalized names, numbers), ``answer "value"`` for
  those values and ``"N/A"`` (WebArena's answer for impossible tasks), and ``go back``,
  ``scroll down``, ``scroll up``. ``step`` also takes any ``answer "free text"``;
* reward: WebArena's evaluator score (0 or 1), which ends the episode with an answer.

The browser is the system Chromium (Debian ``chromium``) driven by Playwright through the
same wrapper script as MiniWoB++: no Playwright browser download. BrowserGym's Playwright
objects belong to the thread that started them: use one environment from one thread.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, EvolventError
from benchmarks.envs import procs
from benchmarks.envs.base import Env, Family, Observation, StepInfo, StepResult
from benchmarks.envs.chromium import browser_scripts

WA_URL_VARS: tuple[str, ...] = (
    "WA_SHOPPING",
    "WA_SHOPPING_ADMIN",
    "WA_REDDIT",
    "WA_GITLAB",
    "WA_WIKIPEDIA",
    "WA_MAP",
    "WA_HOMEPAGE",
)
"""The server URLs BrowserGym's WebArena tasks read (``browsergym.webarena.instance``)."""
N_TASKS = 812
CLICK_ROLES = frozenset(
    {
        "button",
        "link",
        "checkbox",
        "radio",
        "menuitem",
        "menuitemcheckbox",
        "menuitemradio",
        "option",
        "tab",
        "switch",
        "treeitem",
        "combobox",
        "textbox",
        "searchbox",
    }
)
FILL_ROLES = frozenset({"textbox", "searchbox", "combobox"})
_NAV_ACTIONS = {
    "go back": "go_back()",
    "scroll down": "scroll(0, 500)",
    "scroll up": "scroll(0, -500)",
}
_ANSWER = re.compile(r'^answer "(.*)"$', re.S)
_NAME_MAX = 40
_ENDED_REPLY = "The episode has ended."


def missing_urls(environ: Mapping[str, str] | None = None) -> list[str]:
    """The WebArena URL variables that are unset or empty."""
    environ = os.environ if environ is None else environ
    return [name for name in WA_URL_VARS if not environ.get(name, "").strip()]


def check_urls(environ: Mapping[str, str] | None = None) -> None:
    """ConfigError naming the missing ``WA_*`` variables, if any."""
    missing = missing_urls(environ)
    if missing:
        raise ConfigError(
            f"WebArena needs the URLs of your WebArena servers: set {', '.join(missing)} "
            "(see benchmarks/envs/webarena_env.py)"
        )


def intent_values(goal: str, limit: int = 8) -> list[str]:
    """Text the agent may type or answer: quoted strings, capitalized names and numbers of
    the intent, in order of appearance, without duplicates."""
    quoted = re.findall(r'"([^"]+)"|“([^”]+)”', goal)
    values = [a or b for a, b in quoted]
    words = r"[A-Z][\w&'.-]*"
    # capitalized runs not at the start of a sentence ("Carnegie Mellon University")
    names = re.findall(rf"(?<![.?!]\s)(?<!^)\b({words}(?:\s+(?:of\s+|the\s+)?{words})*)", goal)
    values += [name.rstrip(".") for name in names]
    values += re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])", goal)
    unique = [v.strip() for v in dict.fromkeys(values) if v.strip()]
    return unique[:limit]


def _short(text: str) -> str:
    text = " ".join(text.replace('"', "'").split())
    return text if len(text) <= _NAME_MAX else text[: _NAME_MAX - 3].rstrip() + "..."


def page_actions(axtree: Mapping[str, Any], extra: Mapping[str, Any], goal: str) -> dict[str, str]:
    """Admissible action → BrowserGym action code, from an accessibility tree and BrowserGym's
    extra element properties (visibility, clickability)."""
    values = intent_values(goal)
    actions: dict[str, str] = {}
    for node in axtree.get("nodes", []):
        bid = node.get("browsergym_id")
        if bid is None or node.get("ignored"):
            continue
        props = extra.get(bid, {})
        if float(props.get("visibility") or 0.0) < 0.5:
            continue
        role = str(node.get("role", {}).get("value", ""))
        if role not in CLICK_ROLES and not props.get("clickable"):
            continue
        name = _short(str(node.get("name", {}).get("value", "")))
        described = f"[{bid}] {role}" + (f' "{name}"' if name else "")
        actions[f"click {described}"] = f"click({bid!r})"
        if role in FILL_ROLES:
            for value in values:
                actions[f'fill {described} with "{_short(value)}"'] = f"fill({bid!r}, {value!r})"
    for value in [*values, "N/A"]:
        actions[f'answer "{_short(value)}"'] = f"send_msg_to_user({value!r})"
    actions.update(_NAV_ACTIONS)
    return actions


class _SystemChromium:
    """Playwright's ``chromium`` launching the system Chromium: BrowserGym launches two
    browsers (page and chat) with no way to pass an executable to the chat's."""

    def __init__(self, browser_type: Any, executable: str) -> None:
        self._type = browser_type
        self._executable = executable

    def launch(self, **kwargs: Any) -> Any:
        kwargs.setdefault("executable_path", self._executable)
        return self._type.launch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._type, name)


class _PlaywrightWithSystemChromium:
    def __init__(self, playwright: Any, executable: str) -> None:
        self._playwright = playwright
        self.chromium = _SystemChromium(playwright.chromium, executable)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._playwright, name)


def _use_system_chromium(executable: str) -> None:
    import browsergym.core as bgym_core

    playwright = bgym_core._get_global_playwright()
    if not isinstance(playwright, _PlaywrightWithSystemChromium):
        bgym_core._set_global_playwright(_PlaywrightWithSystemChromium(playwright, executable))


class BrowserGymEnv:
    """Any BrowserGym task behind the ``Env`` protocol (WebArenaEnv is one).

    ``task_entrypoint`` returns the ``browsergym.core.task.AbstractBrowserTask`` subclass
    (called at the first ``reset()``, so that BrowserGym is imported only then);
    ``env_kwargs`` go to ``browsergym.core.env.BrowserEnv``.
    """

    def __init__(
        self,
        env_id: str,
        seed: int,
        games_dir: Path,
        task_entrypoint: Callable[[], Any],
        task_kwargs: Mapping[str, Any] | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self._env_id = env_id
        self._seed = seed
        self._root = Path(games_dir) / "chromium"
        self._entrypoint = task_entrypoint
        self._task_kwargs = dict(task_kwargs or {})
        self._env_kwargs = dict(env_kwargs or {})
        self._env: Any = None
        self._goal = ""
        self._actions: dict[str, str] = {}
        self._info = StepInfo()
        self._done = False
        self._groups: set[int] = set()  # the process groups of the browsers it launched

    @property
    def env_id(self) -> str:
        return self._env_id

    @property
    def seed(self) -> int:
        return self._seed

    def _start(self) -> Any:
        if self._env is None:
            chrome_sh, _ = browser_scripts(self._root)
            try:
                from browsergym.core.env import BrowserEnv
            except ImportError as exc:
                raise ConfigError(
                    f"BrowserGym is not installed ({exc}): pip install browsergym-core==0.14.3"
                ) from exc
            _use_system_chromium(str(chrome_sh))
            self._env = BrowserEnv(
                task_entrypoint=self._entrypoint(),
                task_kwargs=self._task_kwargs,
                headless=True,
                **self._env_kwargs,
            )
        return self._env

    def _render(self, obs: Mapping[str, Any]) -> str:
        from browsergym.utils.obs import IGNORED_AXTREE_ROLES, flatten_axtree_to_str

        tree = flatten_axtree_to_str(
            obs["axtree_object"],
            extra_properties=obs["extra_element_properties"],
            filter_visible_only=True,
            # recent Chromium exposes each line box too: noise that repeats the text
            ignored_roles=[*IGNORED_AXTREE_ROLES, "InlineTextBox"],
        )
        lines = [f"URL: {obs.get('url', '')}"]
        if obs.get("last_action_error"):
            lines.append(f"Error: {' '.join(str(obs['last_action_error']).split())[:300]}")
        return "\n".join([*lines, tree])

    def _observe(self, obs: Mapping[str, Any]) -> tuple[str, list[str]]:
        self._actions = page_actions(
            obs["axtree_object"], obs["extra_element_properties"], self._goal
        )
        return self._render(obs), list(self._actions)

    def reset(self) -> Observation:
        env = self._start()
        before = procs.browser_groups()
        obs, _ = env.reset(seed=self._seed)
        self._groups |= procs.browser_groups() - before
        goal_parts = [
            g.get("text", "") for g in obs.get("goal_object", ()) if g.get("type") == "text"
        ]
        self._goal = " ".join(goal_parts) or str(obs.get("goal") or "")
        self._done = False
        self._info = StepInfo()
        text, admissible = self._observe(obs)
        return Observation(task=self._goal, text=text, admissible=admissible, info=StepInfo())

    def step(self, action: str) -> StepResult:
        if self._env is None:
            raise RuntimeError(f"{type(self).__name__}.step() called before reset()")
        if self._done:
            return self._reply(_ENDED_REPLY)
        code = self._actions.get(action.strip())
        answer = _ANSWER.match(action.strip())
        if code is None and answer is not None:
            code = f"send_msg_to_user({answer.group(1)!r})"
        if code is None:
            return self._reply(f"Unknown action {action!r}: choose one of the admissible actions.")
        obs, reward, terminated, truncated, _ = self._env.step(code)
        gained = max(float(reward or 0.0), 0.0)
        score = min(self._info.score + gained, 1.0)
        self._done = bool(terminated or truncated)
        self._info = StepInfo(
            score=score, max_score=1.0, won=score >= 1.0, lost=self._done and score < 1.0
        )
        if self._done:
            self._actions = {}
            text = f"The episode has ended: score {score:g}."
            return StepResult(text=text, admissible=[], reward=gained, done=True, info=self._info)
        text, admissible = self._observe(obs)
        return StepResult(
            text=text,
            admissible=admissible,
            reward=gained,
            done=False,
            info=self._info.model_copy(),
        )

    def _reply(self, text: str) -> StepResult:
        return StepResult(
            text=text,
            admissible=list(self._actions),
            reward=0.0,
            done=self._done,
            info=self._info.model_copy(),
        )

    def close(self) -> None:
        env, self._env = self._env, None
        if env is not None:
            env.close()
        groups, self._groups = self._groups, set()
        for pgid in groups:  # a renderer may outlive its browser: stop what is left
            procs.stop(functools.partial(procs.group_pids, pgid), grace_s=5.0)


def _webarena_task() -> Any:
    try:
        from browsergym.webarena.task import GenericWebArenaTask
    except ImportError as exc:
        raise ConfigError(
            f"WebArena needs browsergym-webarena ({exc}): pip install browsergym-webarena==0.14.3"
        ) from exc
    except Exception as exc:  # its import fetches NLTK data; offline that fails
        detail = " ".join(str(exc).split())[:200]
        raise EvolventError(
            f"cannot import browsergym.webarena ({detail}); if NLTK data is missing, run "
            "`python -m nltk.downloader punkt_tab` where the internet is reachable"
        ) from exc
    return GenericWebArenaTask


class WebArenaEnv(BrowserGymEnv):
    """One WebArena task (``seed`` = task id) on the servers named by the ``WA_*`` URLs."""

    def __init__(self, task_id: int, games_dir: Path) -> None:
        if not 0 <= task_id < N_TASKS:
            raise ConfigError(f"WebArena task ids are 0–{N_TASKS - 1} (got {task_id})")
        check_urls()
        super().__init__("webarena:task", task_id, games_dir, _webarena_task, {"task_id": task_id})


def make(name: str, seed: int, games_dir: Path) -> Env:
    """``Family.make`` for ``webarena:task``: ``seed`` is the WebArena task id."""
    if name != "task":
        raise ConfigError(f"unknown WebArena environment {name!r}; the id is webarena:task")
    return WebArenaEnv(seed, games_dir)


FAMILY = Family(
    prefix="webarena",
    names=("task",),
    make=make,
    name_label="task",
    summary=(
        "WebArena via BrowserGym (seed = task id 0-811); needs the WA_* server URLs "
        f"({', '.join(WA_URL_VARS)}) and pip install browsergym-webarena"
    ),
)
