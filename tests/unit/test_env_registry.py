"""The env registry: ids, errors, and the toy family (no TextWorld needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ConfigError, UnknownEnvError
from benchmarks.envs import ENV_IDS, ToyEnv, make_env, pregenerate
from benchmarks.envs.registry import CORE_IDS, FAMILIES
from benchmarks.envs.textworld_env import clean_feedback, sanitize_command


def test_env_ids() -> None:
    core = [
        "textworld:cooking",
        "textworld:treasure_hunter",
        "textworld:coin_collector",
        "toy:keys",
    ]
    assert core == CORE_IDS and ENV_IDS[: len(core)] == core
    alfworld = [i for i in ENV_IDS if i.startswith("alfworld:")]
    assert alfworld == [
        "alfworld:pick_and_place_simple",
        "alfworld:look_at_obj_in_light",
        "alfworld:pick_clean_then_place_in_recep",
        "alfworld:pick_heat_then_place_in_recep",
        "alfworld:pick_cool_then_place_in_recep",
        "alfworld:pick_two_obj_and_place",
    ]
    assert len(set(ENV_IDS)) == len(ENV_IDS)


def test_make_toy(tmp_path: Path) -> None:
    env = make_env("toy:keys", seed=4, games_dir=tmp_path)
    assert isinstance(env, ToyEnv) and env.seed == 4 and env.env_id == "toy:keys"
    assert pregenerate("toy:keys", [1, 2], tmp_path) == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("env_id", ["nope", "textworld:zork", "textworld", "toy:keys:extra"])
def test_unknown_id_lists_valid_ids(env_id: str, tmp_path: Path) -> None:
    with pytest.raises(UnknownEnvError) as info:
        make_env(env_id, seed=0, games_dir=tmp_path)
    # The core ids in full, one short line per other family.
    assert all(valid in str(info.value) for valid in CORE_IDS)
    assert all(f"{prefix}:<" in str(info.value) for prefix in FAMILIES)


def test_unknown_family_name_lists_that_family(tmp_path: Path) -> None:
    with pytest.raises(UnknownEnvError) as info:
        make_env("alfworld:pick_three", seed=0, games_dir=tmp_path)
    assert all(f"alfworld:{name}" in str(info.value) for name in FAMILIES["alfworld"].names)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "env_id",
    [
        "textworld:treasure_hunter:level=0",
        "textworld:treasure_hunter:level=31",
        "textworld:coin_collector:level=x",
        "textworld:cooking:level=2",
        "toy:keys:level=2",
    ],
)
def test_bad_level_is_a_config_error(env_id: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        make_env(env_id, seed=0, games_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_negative_seed_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        make_env("textworld:cooking", seed=-1, games_dir=tmp_path)


def test_clean_feedback_drops_banner_prompt_and_status() -> None:
    raw = (
        "\n\n   ________  __\n  |        \\|  \\\n   \\$$$$$$$$| $$\n\n"
        "Welcome! Find the coin.\n\n-= Hall =-\nA hall.\n\n\n\n"
        ">                                        -= Hall =-0/1"
    )
    assert clean_feedback(raw) == "Welcome! Find the coin.\n\n-= Hall =-\nA hall."
    end = (
        "\nYou eat the meal.\n\n\n     *** The End ***\n\nYou scored 5 out of a possible 5.\n\n\n"
        "Would you like to RESTART, RESTORE a saved game, QUIT or UNDO the last command?\n"
        ">                  -= Kitchen =-4/6"
    )
    assert clean_feedback(end) == (
        "You eat the meal.\n\n*** The End ***\n\nYou scored 5 out of a possible 5."
    )


def test_sanitize_command_keeps_one_printable_line() -> None:
    assert sanitize_command("  look\ninventory\x00 ") == "look inventory"
    assert sanitize_command("\ttake  red apple\r") == "take red apple"
