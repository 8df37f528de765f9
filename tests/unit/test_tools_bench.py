"""The tools benchmark plays a stream, then the held-out games with and without tools."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.llm.scripted import ScriptedLLM
from benchmarks import tools_bench
from memory import HashingEmbedder
from toolsmith.synthesizer import ToolsmithConfig


def first_option(kind: str, prompt: str, options: Sequence[str] | type[BaseModel] | None) -> str:
    return options[0] if isinstance(options, list) else "1. look around"


def test_held_out_games_are_played_with_and_without_tools(tmp_path: Path) -> None:
    settings = tools_bench.settings_for(tmp_path / "tools", 6, tmp_path / "games", True)
    log = tmp_path / "episodes.jsonl"
    smith, rows, held = tools_bench.play(
        "tools",
        settings,
        ScriptedLLM(responder=first_option),
        HashingEmbedder(),
        ToolsmithConfig(batch_size=2, code_every=0),
        [0, 1, 2],
        "toy:keys",
        log,
        warmup=[10, 11, 12],
        held_out=[20, 21],
    )
    try:
        assert [r["pass"] for r in rows] == ["tools"] * 3
        assert [(r["pass"], r["seed"]) for r in held] == [
            ("held-out", 20),
            ("held-out-without-tools", 20),
            ("held-out", 21),
            ("held-out-without-tools", 21),
        ]
        assert all(r["tool_calls"] == 0 for r in held[1::2])  # none offered without tools
        assert len(log.read_text().splitlines()) == 7
        assert settings.agent.learn and settings.agent.use_tools  # restored
        text = tools_bench.report(smith, rows, [], held)
        assert "== held-out games, learning frozen" in text
        assert "without tools: " in text
    finally:
        smith.registry.close()


def test_bad_counts_are_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        tools_bench.main(["--held-out", "-1"])
    assert stop.value.code == 2
    assert "--held-out must not be negative" in capsys.readouterr().err
    # Before any work and any temporary folder: an unknown environment (a traceback and
    # an empty folder left behind), a --home of an earlier run (its state was learned on).
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "episodes.jsonl").write_text("{}\n")
    for argv, message in [
        (["--env", "nope"], "unknown environment 'nope'; valid ids:"),
        (["--home", str(tmp_path / "old")], "holds an earlier run's state"),
    ]:
        with pytest.raises(SystemExit) as stop:
            tools_bench.main(argv)
        assert stop.value.code == 2 and message in capsys.readouterr().err
