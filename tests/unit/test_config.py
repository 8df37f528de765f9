from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_settings
from agent.errors import ConfigError


def test_precedence_file_env_flags(
    evolvent_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[llm]\nmodel = "from-file"\ntimeout_s = 5\n[limits]\nmax_steps = 7\n')
    s = load_settings(cfg)
    assert (s.llm.model, s.llm.timeout_s, s.limits.max_steps) == ("from-file", 5, 7)
    monkeypatch.setenv("EVOLVENT_LLM__MODEL", "from-env")
    s = load_settings(cfg)
    assert s.llm.model == "from-env" and s.limits.max_steps == 7
    s = load_settings(cfg, **{"llm.model": "from-flag", "limits.max_steps": None})
    assert s.llm.model == "from-flag" and s.limits.max_steps == 7
    assert s.checkpoint_path == evolvent_home / "checkpoints.sqlite"


def test_yaml_and_errors(evolvent_home: Path, tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("memory:\n  namespace: team-a\n")
    assert load_settings(y).memory.namespace == "team-a"
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits]\nmax_steps = 0\n")
    with pytest.raises(ConfigError, match=r"limits\.max_steps"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="namespace"):
        load_settings(None, **{"memory.namespace": "no spaces please"})


def test_an_unknown_setting_is_refused_with_the_valid_names(
    evolvent_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt key in any section would otherwise be ignored without a word."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[llm]\nbase_ulr = "http://x"\n[memory.values]\ngama = 0.5\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    message = str(info.value)
    assert "llm.base_ulr: unknown setting (valid: api_key, backoff_s, base_url," in message
    assert "memory.values.gama: unknown setting (valid: " in message and " gamma, " in message
    monkeypatch.setenv("EVOLVENT_LIMITS__MAX_STPES", "5")
    with pytest.raises(ConfigError, match=r"limits\.max_stpes: unknown setting \(valid: "):
        load_settings(None)
    monkeypatch.delenv("EVOLVENT_LIMITS__MAX_STPES")
    with pytest.raises(ConfigError, match=r"agent\.nope: unknown setting"):
        load_settings(None, **{"agent.nope": 1})
    top = tmp_path / "top.toml"
    top.write_text("bogus = 1\n")
    with pytest.raises(ConfigError, match=r"bogus: unknown setting \(valid: agent, api_keys,"):
        load_settings(top)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.toml", b"llm = [", r"cannot read config file .*broken\.toml: Invalid value"),
        ("broken.yaml", b"llm:\n  base_url: [\n", r"cannot read config file .*broken\.yaml: "),
        ("binary.toml", b"\xff\xfe\x00", r"cannot read config file .*: 'utf-8' codec"),
        ("list.yaml", b"- a\n- b\n", r"must hold a table of settings .*, not a list"),
        ("text.yml", b"just text\n", r"must hold a table of settings .*, not a str"),
    ],
)
def test_a_config_file_that_does_not_parse_is_a_config_error(
    evolvent_home: Path, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(path)
    assert "\n" not in str(info.value)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_settings(empty).memory.namespace == load_settings(None).memory.namespace


def test_the_learners_parameters_come_from_the_settings(
    evolvent_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.agent import Agent
    from agent.llm.scripted import ScriptedLLM

    cfg = tmp_path / "c.toml"
    cfg.write_text("[memory.values]\ngamma = 0.95\nepsilon_min = 0.05\n")
    monkeypatch.setenv("EVOLVENT_MEMORY__EPISODIC__ALPHA", "0.5")
    s = load_settings(cfg, **{"memory.values.untried_floor": None})
    assert (s.memory.values.gamma, s.memory.values.epsilon_min) == (0.95, 0.05)
    assert s.memory.values.untried_floor == 0.0  # an unset flag keeps the default
    assert s.memory.episodic.alpha == 0.5 and s.memory.episodic.k1 == 5
    # The agent's store learns with them.
    with Agent(s, llm=ScriptedLLM([])) as agent:
        assert agent.memory.values.params == s.memory.values
        assert agent.memory.episodes.params == s.memory.episodic
    with pytest.raises(ConfigError, match=r"memory\.values\.gamma"):
        load_settings(None, **{"memory.values.gamma": 1.5})
    monkeypatch.setenv("EVOLVENT_MEMORY__EPISODIC__DELTA", "high")
    with pytest.raises(ConfigError, match=r"memory\.episodic\.delta"):
        load_settings(None)
    monkeypatch.delenv("EVOLVENT_MEMORY__EPISODIC__DELTA")
    monkeypatch.setenv("EVOLVENT_HOME", "")  # set but empty: it was the current directory
    with pytest.raises(ConfigError, match="invalid settings: home: must not be blank"):
        load_settings(None)
    monkeypatch.setenv("EVOLVENT_HOME", str(evolvent_home))
    # A NaN or infinite setting would reach the memories (q0 is a new memory's Q-value).
    for name, value in (("EPISODIC__Q0", "nan"), ("VALUES__WIN_BONUS", "inf")):
        with pytest.MonkeyPatch.context() as env:
            env.setenv(f"EVOLVENT_MEMORY__{name}", value)
            with pytest.raises(ConfigError, match=f"{name.lower().replace('__', '.')}: .*finite"):
                load_settings(None)


def test_the_readme_config_example_loads_and_shows_the_learners_defaults(
    evolvent_home: Path, tmp_path: Path
) -> None:
    import re

    from memory.episodic import EpisodicParams
    from memory.values import ValueParams

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (block,) = re.findall(r"```toml\n(# evolvent\.toml\n.*?)```", readme, re.S)
    cfg = tmp_path / "evolvent.toml"
    cfg.write_text(block)
    s = load_settings(cfg)
    assert s.memory.namespace == "team-a" and s.llm.kind == "vllm"
    assert "gamma" in block and "alpha" in block
    # The README says the learners' values it shows are the defaults.
    assert s.memory.values == ValueParams() and s.memory.episodic == EpisodicParams()


def test_the_test_servers_stores_learn_with_the_settings_parameters(tmp_path: Path) -> None:
    from agent.server.testing import fake_deps, quiet_settings

    s = quiet_settings(tmp_path, **{"memory.values.gamma": 0.95, "memory.episodic.alpha": 0.5})
    store = fake_deps(tmp_path, {"k": "team-a"}, settings=s).memory("team-a")
    assert store.values.params.gamma == 0.95 and store.episodes.params.alpha == 0.5
