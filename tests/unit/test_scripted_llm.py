"""ScriptedLLM: the fake behaves like the real client where tests rely on it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from pydantic import BaseModel

from agent.errors import InvalidLLMOutput
from agent.llm import LLMClient, ScriptedLLM, ScriptExhausted, Usage

OPTIONS = ["go north", "open fridge"]


class Plan(BaseModel):
    goal: str
    steps: list[str]


def test_is_an_llm_client() -> None:
    assert isinstance(ScriptedLLM(), LLMClient)


def test_answers_come_from_the_queue_in_order() -> None:
    llm = ScriptedLLM(["open fridge", "a plan", {"goal": "eat", "steps": ["cook"]}])
    choice = llm.choose("Pick:\n> ", OPTIONS)
    assert (choice.text, choice.index) == ("open fridge", 1)
    assert llm.complete("Plan:", max_tokens=8).text == "a plan"
    assert llm.structured("JSON:", Plan) == Plan(goal="eat", steps=["cook"])
    assert llm.remaining == 0
    assert [c.kind for c in llm.calls] == ["choose", "complete", "structured"]
    assert llm.prompts == ["Pick:\n> ", "Plan:", "JSON:"]
    assert llm.calls[0].options == OPTIONS and llm.calls[2].schema is Plan


def test_choose_strips_whitespace_like_the_real_client() -> None:
    assert ScriptedLLM(["  go north\n"]).choose("p", OPTIONS).text == "go north"


def test_junk_is_retried_with_the_next_answer() -> None:
    llm = ScriptedLLM(["dance", "go north"], max_retries=1)
    assert llm.choose("p", OPTIONS).text == "go north"
    assert llm.calls[0].answers == ["dance", "go north"]
    assert len(llm.calls) == 1


def test_persistent_junk_raises_invalid_output_after_the_retries() -> None:
    llm = ScriptedLLM(["dance", "sing", "fly", "go north"], max_retries=2)
    with pytest.raises(InvalidLLMOutput, match="not one of the options"):
        llm.choose("p", OPTIONS)
    assert llm.remaining == 1  # three attempts consumed, no more
    usage = llm.meter.snapshot()
    assert usage.calls == 1 and usage.prompt_tokens == 3  # one word, three attempts


def test_structured_accepts_models_dicts_and_json_and_retries_invalid_ones() -> None:
    plan = Plan(goal="g", steps=[])
    llm = ScriptedLLM([plan, '{"goal": "h", "steps": ["a"]}', "not json", {"goal": 1}, plan])
    assert llm.structured("p", Plan) is plan
    assert llm.structured("p", Plan).goal == "h"
    assert llm.structured("p", Plan) is plan
    assert llm.calls[-1].answers == ["not json", '{"goal": 1}', plan.model_dump_json()]
    with pytest.raises(InvalidLLMOutput):
        ScriptedLLM(["{}"] * 2, max_retries=1).structured("p", Plan)


def test_complete_cuts_at_the_first_stop_sequence() -> None:
    llm = ScriptedLLM(["take apple\ngo north"])
    assert llm.complete("p", max_tokens=8, stop=["\n"]).text == "take apple"
    assert llm.calls[0].stop == ["\n"] and llm.calls[0].max_tokens == 8


def test_responder_answers_when_the_queue_is_empty() -> None:
    seen: list[tuple[str, object]] = []

    def respond(kind: str, prompt: str, about: Sequence[str] | type[BaseModel] | None) -> str:
        seen.append((kind, about))
        if kind == "choose":
            assert isinstance(about, list)
            return str(about[-1])
        if kind == "structured":
            return '{"goal": "g", "steps": []}'
        return "text"

    llm = ScriptedLLM(["go north"], responder=respond)
    assert llm.choose("p", OPTIONS).text == "go north"  # queue first
    assert llm.choose("p", OPTIONS).text == "open fridge"
    assert llm.complete("p", max_tokens=4).text == "text"
    assert llm.structured("p", Plan).goal == "g"
    assert seen == [("choose", OPTIONS), ("complete", None), ("structured", Plan)]


def test_running_out_of_script_fails_loudly() -> None:
    llm = ScriptedLLM(["go north"])
    llm.choose("p", OPTIONS)
    with pytest.raises(ScriptExhausted, match="no answer left for complete"):
        llm.complete("the prompt", max_tokens=4)


def test_tokens_are_counted_deterministically_per_call_and_in_the_meter() -> None:
    llm = ScriptedLLM(["open fridge", "one two three"])
    choice = llm.choose("you see a fridge", OPTIONS)
    assert choice.usage == Usage(prompt_tokens=4, completion_tokens=2, calls=1)
    out = llm.complete("a b", max_tokens=8)
    assert out.usage == Usage(prompt_tokens=2, completion_tokens=3, calls=1)
    assert llm.meter.snapshot() == choice.usage + out.usage


def test_a_meter_snapshot_stays_as_it_was_taken() -> None:
    llm = ScriptedLLM(["a", "b"])
    before = llm.meter.snapshot()
    first = llm.choose("p", ["a"]).usage
    middle = llm.meter.snapshot()
    llm.choose("p", ["b"])
    assert before == Usage() and middle == first  # later calls left both alone
    assert llm.meter.snapshot() - middle != Usage() and llm.meter.snapshot().calls == 2
    with pytest.raises(ValueError):
        middle.calls = 0  # type: ignore[misc]  # immutable: nobody can change the meter


def test_close_is_recorded_and_idempotent() -> None:
    llm = ScriptedLLM()
    llm.close()
    llm.close()
    assert llm.closed
