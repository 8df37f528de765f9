"""The WebArena adapter: its configuration errors, the BrowserGym plumbing on a local page
with real headless Chromium, and a real WebArena task when servers are configured."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError
from benchmarks.envs import Env, make_env, procs
from benchmarks.envs.registry import ENV_IDS
from benchmarks.envs.webarena_env import (
    WA_URL_VARS,
    BrowserGymEnv,
    WebArenaEnv,
    intent_values,
    missing_urls,
)

pytestmark = pytest.mark.integration

_PAGE = """<html><body><h1>Shop</h1>
<input type="text" aria-label="Search" id="q">
<button onclick="document.title = 'bought ' + document.getElementById('q').value">Buy</button>
<button onclick="document.title = 'cancelled'">Cancel</button>
</body></html>"""


def _buy_task() -> Any:
    """A BrowserGym task on a local page: fill the search box, then press Buy."""
    from browsergym.core.task import AbstractBrowserTask

    class BuyTask(AbstractBrowserTask):  # type: ignore[misc]
        def __init__(self, seed: int) -> None:
            super().__init__(seed)
            self.slow_mo = 0

        @classmethod
        def get_task_id(cls) -> str:
            return "local.buy"

        def setup(self, page: Any) -> tuple[str, dict[str, Any]]:
            page.set_content(_PAGE)
            return 'Search for "red shoes", not "blue shoes", then press the button to buy.', {}

        def validate(
            self, page: Any, chat_messages: list[Any]
        ) -> tuple[float, bool, str, dict[str, Any]]:
            title = page.title()
            if title == "bought red shoes":
                return 1.0, True, "", {}
            return 0.0, title.startswith("bought") or title == "cancelled", "", {}

    return BuyTask


def _chromium_descendants() -> dict[int, str]:
    """Live Chromium processes below this test process (Playwright's driver launches them)."""
    return {p.pid: p.command for p in procs.descendants() if procs.is_browser(p.command)}


def test_missing_urls_is_a_one_line_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in WA_URL_VARS:
        monkeypatch.delenv(name, raising=False)
    assert "webarena:task" in ENV_IDS
    with pytest.raises(ConfigError) as info:
        make_env("webarena:task", 0, tmp_path)
    message = str(info.value)
    assert all(name in message for name in WA_URL_VARS) and "\n" not in message
    monkeypatch.setenv("WA_SHOPPING", "http://localhost:7770")
    monkeypatch.setenv("WA_MAP", " ")  # blank counts as missing
    with pytest.raises(ConfigError) as info:
        make_env("webarena:task", 0, tmp_path)
    assert "WA_SHOPPING," not in str(info.value) and "WA_MAP" in str(info.value)
    assert missing_urls({name: "http://x" for name in WA_URL_VARS}) == []
    assert list(tmp_path.iterdir()) == []


def test_task_id_out_of_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in WA_URL_VARS:
        monkeypatch.setenv(name, "http://localhost:1")
    env = make_env("webarena:task", 811, tmp_path)  # builds without touching a server
    assert isinstance(env, WebArenaEnv) and (env.env_id, env.seed) == ("webarena:task", 811)
    with pytest.raises(ConfigError, match="0–811"):
        make_env("webarena:task", 812, tmp_path)


def test_intent_values() -> None:
    goal = 'Find "red shoes" near Carnegie Mellon University under 25 dollars. Then stop.'
    assert intent_values(goal) == ["red shoes", "Carnegie Mellon University", "25"]


def test_browsergym_adapter_plays_a_local_page(tmp_path: Path) -> None:
    # One episode (a BrowserGym reset launches two browsers: several seconds on 2 cores).
    env = BrowserGymEnv(
        "local:buy", 0, tmp_path, _buy_task, env_kwargs={"pre_observation_delay": 0.1}
    )
    assert isinstance(env, Env)
    before = _chromium_descendants()  # browsers other tests leave to interpreter exit
    try:
        obs = env.reset()
        assert obs.task.startswith('Search for "red shoes"')
        assert "button 'Buy'" in obs.text and "InlineTextBox" not in obs.text
        fills = [a for a in obs.admissible if a.startswith("fill")]
        (right,) = [a for a in fills if a.endswith('with "red shoes"')]
        wrong = next(a for a in fills if a != right)
        buy = next(a for a in obs.admissible if a.startswith("click") and 'button "Buy"' in a)
        assert {'answer "N/A"', "go back", "scroll down"} <= set(obs.admissible)
        refused = env.step("dance")
        assert not refused.done and refused.admissible == obs.admissible
        assert "value=" in env.step(wrong).text
        filled = env.step(right)  # fill replaces the wrong text
        assert not filled.done and filled.reward == 0 and "value='red shoes'" in filled.text
        won = env.step(buy)
        assert won.done and won.reward == 1.0 and won.info.won and won.admissible == []
        after = env.step(buy)
        assert after.done and after.reward == 0 and after.text == "The episode has ended."
        assert _chromium_descendants().keys() - before.keys()  # the page's and chat's browsers
    finally:
        env.close()
    left = {pid: cmd for pid, cmd in _chromium_descendants().items() if pid not in before}
    assert left == {}


def test_real_webarena_task(tmp_path: Path) -> None:
    missing = missing_urls()
    if missing:
        pytest.skip(f"WebArena servers not configured: set {', '.join(missing)} to run")
    env = WebArenaEnv(int(os.environ.get("WA_TEST_TASK_ID", "0")), tmp_path)
    try:
        obs = env.reset()
        assert obs.task and "URL: " in obs.text and obs.admissible
        result = env.step("scroll down")
        assert result.admissible and not result.done
    finally:
        env.close()
