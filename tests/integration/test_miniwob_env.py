"""MiniWoBEnv against real headless Chromium (no fakes).

Starting Chromium takes 1–3 s, so each (task, seed) browser is shared by the module's tests;
the right action is derived from the utterance, the way a reader of the task would.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import ConfigError
from benchmarks.envs import Env, make_env
from benchmarks.envs.miniwob_env import DEFAULT_TASKS, FAMILY, TASKS, MiniWoBEnv
from benchmarks.envs.registry import ENV_IDS

pytestmark = pytest.mark.integration

EnvFactory = dict[tuple[str, int], MiniWoBEnv]


@pytest.fixture(scope="module")
def games_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("miniwob")


@pytest.fixture(scope="module")
def envs(games_dir: Path) -> Iterator[EnvFactory]:
    opened: EnvFactory = {}
    yield opened
    for env in opened.values():
        env.close()


def _env(envs: EnvFactory, games_dir: Path, task: str, seed: int) -> MiniWoBEnv:
    if (task, seed) not in envs:
        envs[task, seed] = MiniWoBEnv(task, seed, games_dir)
    return envs[task, seed]


def _quoted(utterance: str) -> list[str]:
    return re.findall(r'"([^"]*)"', utterance)


def _chromium_pids(games_dir: Path) -> list[int]:
    """Live Chromium/ChromeDriver processes started by this test process (its descendants,
    and crashpad handlers, which detach but name the env's folder)."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[-1].split()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if stat[0] != "Z":
            parents[int(entry)] = int(stat[1])
            commands[int(entry)] = command.decode(errors="replace")
    ours = {os.getpid()}
    for _ in range(10):  # chromedriver → chromium → zygote → renderer: a few levels
        ours |= {pid for pid, parent in parents.items() if parent in ours}
    return sorted(
        pid
        for pid, command in commands.items()
        if "chrom" in command and (pid in ours or str(games_dir) in command)
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_click_button_named_in_the_utterance_wins(
    envs: EnvFactory, games_dir: Path, seed: int
) -> None:
    env = _env(envs, games_dir, "click-button", seed)
    obs = env.reset()
    assert isinstance(env, Env) and (env.env_id, env.seed) == ("miniwob:click-button", seed)
    (target,) = _quoted(obs.task)
    action = f'click button "{target}"'
    assert action in obs.admissible and f'button "{target}"' in obs.text
    assert f"fields: target={target}" in obs.text
    assert len(obs.admissible) == len(set(obs.admissible)) and all(obs.admissible)
    result = env.step(action)
    assert result.done and result.reward == 1.0 and result.admissible == []
    assert result.info.won and not result.info.lost
    assert (result.info.score, result.info.max_score) == (1.0, 1.0)
    # The ended episode is not touched again.
    after = env.step(action)
    assert after.done and after.reward == 0 and after.admissible == []


def test_wrong_link_loses_and_unknown_actions_are_refused(
    envs: EnvFactory, games_dir: Path
) -> None:
    env = _env(envs, games_dir, "click-link", 1)
    obs = env.reset()
    (target,) = _quoted(obs.task)
    links = [a for a in obs.admissible if a.startswith("click span")]
    wrong = [a for a in links if a != f'click span "{target}"']
    assert f'click span "{target}"' in links and wrong
    refused = env.step("dance wildly")
    assert not refused.done and refused.reward == 0 and refused.admissible == obs.admissible
    result = env.step(wrong[0])
    assert result.done and result.reward == 0
    assert result.info.lost and not result.info.won and result.info.extra["raw_reward"] == -1
    assert env.reset() == obs  # reset really starts the episode again
    assert env.step(f'click span "{target}"').info.won


def test_enter_text_types_the_field_value_then_submits(envs: EnvFactory, games_dir: Path) -> None:
    env = _env(envs, games_dir, "enter-text", 3)
    obs = env.reset()
    (text,) = _quoted(obs.task)
    (type_action,) = [a for a in obs.admissible if a.startswith(f'type "{text}" into textbox')]
    typed = env.step(type_action)
    assert not typed.done and typed.reward == 0 and f'value="{text}"' in typed.text
    # Typing replaces the content instead of appending to it.
    assert f'value="{text}"' in env.step(type_action).text
    assert env.step('click button "Submit"').info.won
    # The page is reused: nothing of the last episode (typed text, focus) shows after reset.
    assert env.reset() == obs and "(focused)" not in obs.text


def test_click_checkboxes_selects_every_listed_one(envs: EnvFactory, games_dir: Path) -> None:
    env = _env(envs, games_dir, "click-checkboxes", 2)
    obs = env.reset()
    names = obs.task.removeprefix("Select ").removesuffix(" and click Submit.").split(", ")
    assert len(names) == 2 and all(f'click checkbox "{n}"' in obs.admissible for n in names)
    partial = env.step(f'click checkbox "{names[0]}"')
    assert "(checked)" in partial.text and not partial.done
    assert env.step('click button "Submit"').info.lost  # one of two is not enough
    env.reset()
    for name in names:
        env.step(f'click checkbox "{name}"')
    assert env.step('click button "Submit"').info.won


def test_login_user_fills_both_fields(envs: EnvFactory, games_dir: Path) -> None:
    env = _env(envs, games_dir, "login-user", 1)
    obs = env.reset()
    username, password = _quoted(obs.task)
    env.step(f'type "{username}" into textbox "Username"')
    env.step(f'type "{password}" into textbox "Password"')
    result = env.step('click button "Login"')
    assert result.done and result.info.won


def test_wrong_password_loses(envs: EnvFactory, games_dir: Path) -> None:
    env = _env(envs, games_dir, "login-user", 1)
    obs = env.reset()
    username, _ = _quoted(obs.task)
    env.step(f'type "{username}" into textbox "Username"')
    env.step(f'type "{username}" into textbox "Password"')  # the username, not the password
    result = env.step('click button "Login"')
    assert result.done and result.info.lost and not result.info.won and result.reward == 0


def test_same_seed_same_episode_other_seed_other_episode(envs: EnvFactory, games_dir: Path) -> None:
    first = _env(envs, games_dir, "click-button", 1).reset()
    assert _env(envs, games_dir, "click-button", 1).reset() == first
    assert _env(envs, games_dir, "click-button", 2).reset() != first


def test_registry_round_trip_and_close_leaves_no_browser(envs: EnvFactory, games_dir: Path) -> None:
    assert "miniwob:click-button" in ENV_IDS
    assert set(DEFAULT_TASKS) <= set(TASKS) == set(FAMILY.names) and len(DEFAULT_TASKS) == 5
    before = _chromium_pids(games_dir)
    env = make_env("miniwob:click-button", 1, games_dir)
    assert isinstance(env, MiniWoBEnv) and (env.env_id, env.seed) == ("miniwob:click-button", 1)
    try:
        # A fresh browser replays the shared one's episode exactly.
        assert env.reset() == _env(envs, games_dir, "click-button", 1).reset()
        started = set(env.browser_pids())
        assert started and started <= set(_chromium_pids(games_dir))
    finally:
        env.close()
    deadline = time.monotonic() + 30  # a loaded machine reaps browsers slowly
    while (left := set(_chromium_pids(games_dir)) - set(before)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left and env.browser_pids() == []
    env.close()  # closing twice is harmless


def test_missing_chromium_is_a_one_line_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MINIWOB_CHROME_BINARY", raising=False)
    monkeypatch.delenv("MINIWOB_CHROMEDRIVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    env = MiniWoBEnv("click-button", 1, tmp_path)
    with pytest.raises(ConfigError, match="chromium chromium-driver") as info:
        env.reset()
    assert "\n" not in str(info.value)
    assert "chromium and chromedriver" in str(info.value)


def test_unknown_task_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown MiniWoB"):
        MiniWoBEnv("drag-box", 1, tmp_path)
