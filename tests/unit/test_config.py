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
