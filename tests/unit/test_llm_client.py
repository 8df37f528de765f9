"""LiteLLMClient against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from llm_stub import (
    Recorded,
    StubServer,
    chat_reply,
    error_reply,
    start_stub,
    text_reply,
)
from pydantic import BaseModel, Field

from agent.config import LLMSettings
from agent.errors import EndpointUnreachable, InvalidLLMOutput
from agent.llm import LiteLLMClient, LLMClient, LLMRequestError, make_client
from agent.llm.calls import Kind, PromptStyle, structured_call
from agent.llm.factory import detect_kind

OPTIONS = ["go north", "take red apple", "open fridge"]


class Plan(BaseModel):
    goal: str
    steps: list[str] = Field(min_length=1)


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = start_stub()
    yield server
    server.close()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make(
    stub: StubServer,
    kind: Kind = "llamacpp",
    style: PromptStyle = "completion",
    sleeps: Sleeps | None = None,
    **kw: Any,
) -> LiteLLMClient:
    defaults: dict[str, Any] = {"model": "m", "backoff_s": 0.01, "timeout_s": 5}
    settings = LLMSettings(prompt_style=style, **{**defaults, **kw})
    return LiteLLMClient(
        settings, stub.base_url, kind, sleep=sleeps if sleeps is not None else Sleeps()
    )


def test_is_an_llm_client(stub: StubServer) -> None:
    assert isinstance(make(stub), LLMClient)


def test_complete_sends_the_prompt_verbatim_and_meters_tokens(stub: StubServer) -> None:
    stub.reply(text_reply(" a brass key.", prompt_tokens=11, completion_tokens=4))
    client = make(stub)
    prompt = "You see a chest.\n> look\nYou find"
    out = client.complete(prompt, max_tokens=16, stop=["\n"])
    assert out.text == " a brass key."
    (req,) = stub.posts
    assert req.path == "/v1/completions"
    assert req.body == {
        "model": "m",
        "prompt": prompt,
        "max_tokens": 16,
        "stop": ["\n"],
        "temperature": 0.0,
    }
    assert (out.usage.prompt_tokens, out.usage.completion_tokens, out.usage.calls) == (11, 4, 1)
    assert out.usage.seconds > 0
    assert client.meter.snapshot() == out.usage


def test_chat_style_wraps_the_prompt_in_one_user_message(stub: StubServer) -> None:
    stub.reply(chat_reply("Hello"))
    out = make(stub, style="chat").complete("Say hello", max_tokens=8)
    assert out.text == "Hello"
    (req,) = stub.posts
    assert req.path == "/v1/chat/completions"
    assert req.body["messages"] == [{"role": "user", "content": "Say hello"}]
    assert "stop" not in req.body


def test_model_names_with_slashes_reach_the_server_unchanged(stub: StubServer) -> None:
    stub.reply(text_reply("x"))
    make(stub, kind="vllm", model="Qwen/Qwen2.5-7B-Instruct").complete("p", max_tokens=1)
    assert stub.posts[0].body["model"] == "Qwen/Qwen2.5-7B-Instruct"


def test_api_key_is_sent_as_bearer(stub: StubServer) -> None:
    stub.reply(text_reply("x"))
    make(stub, api_key="secret-1").complete("p", max_tokens=1)
    assert stub.posts[0].headers["Authorization"] == "Bearer secret-1"


# -- choose: the request form per endpoint kind ---------------------------------------


def test_choose_on_llamacpp_completions_sends_an_escaped_gbnf_alternation(
    stub: StubServer,
) -> None:
    options = ['say "hi"', "back\\slash", "two\nlines", "go north"]
    stub.reply(text_reply("two\nlines"))
    choice = make(stub).choose("Pick:\n> ", options)
    assert (choice.text, choice.index) == ("two\nlines", 2)
    (req,) = stub.posts
    assert req.path == "/v1/completions"
    assert req.body["grammar"] == (
        'root ::= "say \\"hi\\"" | "back\\\\slash" | "two\\nlines" | "go north"'
    )
    assert req.body["max_tokens"] == len("back\\slash") + 1
    assert "response_format" not in req.body


def test_choose_on_vllm_sends_structured_outputs_choice(stub: StubServer) -> None:
    stub.reply(text_reply("open fridge"))
    choice = make(stub, kind="vllm").choose("Pick: ", OPTIONS)
    assert choice.index == 2
    (req,) = stub.posts
    assert req.path == "/v1/completions"
    assert req.body["structured_outputs"] == {"choice": OPTIONS}
    assert "guided_choice" not in req.body and "grammar" not in req.body


def test_choose_on_vllm_chat_uses_the_chat_endpoint(stub: StubServer) -> None:
    stub.reply(chat_reply("go north"))
    assert make(stub, kind="vllm", style="chat").choose("Pick: ", OPTIONS).index == 0
    (req,) = stub.posts
    assert req.path == "/v1/chat/completions"
    assert req.body["structured_outputs"] == {"choice": OPTIONS}


def test_choose_on_openai_sends_a_strict_json_schema_enum(stub: StubServer) -> None:
    stub.reply(chat_reply('{"choice": "take red apple"}'))
    choice = make(stub, kind="openai").choose("Pick: ", OPTIONS)
    assert (choice.text, choice.index) == ("take red apple", 1)
    (req,) = stub.posts
    assert req.path == "/v1/chat/completions"
    fmt = req.body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["properties"]["choice"]["enum"] == OPTIONS
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False


def test_choose_on_llamacpp_chat_sends_json_object_with_schema(stub: StubServer) -> None:
    stub.reply(chat_reply('{"choice": "go north"}'))
    assert make(stub, style="chat").choose("Pick: ", OPTIONS).text == "go north"
    fmt = stub.posts[0].body["response_format"]
    # llama.cpp answers 500 to type=json_schema; json_object + schema is its form.
    assert fmt["type"] == "json_object"
    assert fmt["schema"]["properties"]["choice"]["enum"] == OPTIONS


def test_choose_strips_whitespace_around_the_answer(stub: StubServer) -> None:
    stub.reply(text_reply("  open fridge \n"))
    assert make(stub).choose("Pick: ", OPTIONS).text == "open fridge"


def test_choose_retries_junk_then_accepts_a_valid_answer(stub: StubServer) -> None:
    stub.reply(text_reply("dance wildly"), text_reply("go north"))
    client = make(stub)
    choice = client.choose("Pick: ", OPTIONS)
    assert choice.text == "go north"
    assert len(stub.posts) == 2
    # At temperature 0 the retry would repeat the junk answer.
    assert [r.body["temperature"] for r in stub.posts] == [0.0, 0.7]
    assert choice.usage.calls == 1 and choice.usage.prompt_tokens == 14


def test_choose_gives_up_on_persistent_junk_and_meters_every_attempt(stub: StubServer) -> None:
    stub.reply(*[text_reply("dance wildly", 5, 2)] * 3)
    client = make(stub, max_retries=2)
    with pytest.raises(InvalidLLMOutput, match="not one of the options") as info:
        client.choose("Pick: ", OPTIONS)
    assert "dance wildly" in str(info.value) and "3 attempts" in str(info.value)
    assert len(stub.posts) == 3
    used = client.meter.snapshot()
    assert (used.prompt_tokens, used.completion_tokens, used.calls) == (15, 6, 1)


def test_choose_rejects_broken_json_from_a_json_endpoint(stub: StubServer) -> None:
    stub.reply(chat_reply('{"choice": "fly"}'), chat_reply("not json"))
    with pytest.raises(InvalidLLMOutput):
        make(stub, kind="openai", max_retries=1).choose("Pick: ", OPTIONS)


def test_choose_needs_options(stub: StubServer) -> None:
    with pytest.raises(ValueError):
        make(stub).choose("Pick: ", [])


# -- structured ---------------------------------------------------------------------


def test_structured_on_vllm_sends_the_pydantic_schema(stub: StubServer) -> None:
    stub.reply(text_reply('{"goal": "eat", "steps": ["cook", "eat"]}'))
    plan = make(stub, kind="vllm").structured("Plan: ", Plan, max_tokens=64)
    assert plan == Plan(goal="eat", steps=["cook", "eat"])
    (req,) = stub.posts
    assert req.body["structured_outputs"] == {"json": Plan.model_json_schema()}
    assert req.body["max_tokens"] == 64


def test_structured_on_openai_sends_json_schema(stub: StubServer) -> None:
    stub.reply(chat_reply('{"goal": "eat", "steps": ["cook"]}'))
    make(stub, kind="openai").structured("Plan: ", Plan)
    fmt = stub.posts[0].body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Plan"
    assert fmt["json_schema"]["schema"]["required"] == ["goal", "steps"]
    assert fmt["json_schema"]["strict"] is True


def test_structured_on_openai_is_not_strict_when_fields_have_defaults(stub: StubServer) -> None:
    class Note(BaseModel):
        text: str
        tags: list[str] = []

    stub.reply(chat_reply('{"text": "t"}'))
    assert make(stub, kind="openai").structured("Note: ", Note) == Note(text="t")
    assert stub.posts[0].body["response_format"]["json_schema"]["strict"] is False


def test_structured_on_llamacpp_chat_sends_json_object_with_schema(stub: StubServer) -> None:
    stub.reply(chat_reply('{"goal": "eat", "steps": ["cook"]}'))
    make(stub, style="chat").structured("Plan: ", Plan)
    assert stub.posts[0].body["response_format"] == {
        "type": "json_object",
        "schema": Plan.model_json_schema(),
    }


def test_structured_on_llamacpp_completions_sends_a_grammar(stub: StubServer) -> None:
    pytest.importorskip("llama_cpp", reason="the schema->GBNF converter ships with llama_cpp")
    stub.reply(text_reply('{"goal": "eat", "steps": ["cook"]}'))
    assert make(stub).structured("Plan: ", Plan).goal == "eat"
    (req,) = stub.posts
    assert req.path == "/v1/completions"
    assert req.body["grammar"].count("::=") > 3 and "root ::=" in req.body["grammar"]


def test_structured_on_llamacpp_completions_without_llama_cpp_falls_back_to_chat() -> None:
    schema = Plan.model_json_schema()
    spec = structured_call(
        "llamacpp", "completion", "p", schema, "Plan", 32, grammar_for=no_grammar
    )
    assert spec.endpoint == "chat"
    assert spec.response_format == {"type": "json_object", "schema": schema}
    spec = structured_call("llamacpp", "completion", "p", schema, "Plan", 32, grammar_for=a_grammar)
    assert (spec.endpoint, spec.extra_body) == ("completion", {"grammar": "root ::= x"})


def no_grammar(schema: dict[str, Any]) -> str | None:
    return None


def a_grammar(schema: dict[str, Any]) -> str | None:
    return "root ::= x"


def test_structured_retries_invalid_answers_then_gives_up(stub: StubServer) -> None:
    stub.reply(
        text_reply('{"goal": "eat", "steps": []}'),  # violates min_length
        text_reply('{"goal": "eat", "ste'),  # cut off
        text_reply('{"goal": "eat", "steps": ["cook"]}'),
    )
    assert make(stub, kind="vllm").structured("Plan: ", Plan).steps == ["cook"]
    stub.reply(*[text_reply("[]")] * 2)
    with pytest.raises(InvalidLLMOutput, match="2 attempts"):
        make(stub, kind="vllm", max_retries=1).structured("Plan: ", Plan)


# -- transport failures ---------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_retryable_statuses_are_retried_with_growing_backoff(stub: StubServer, status: int) -> None:
    stub.reply(error_reply(status), error_reply(status), text_reply("go north"))
    sleeps = Sleeps()
    client = make(stub, sleeps=sleeps, backoff_s=0.1)
    assert client.choose("Pick: ", OPTIONS).text == "go north"
    assert len(stub.posts) == 3
    assert len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.15 and 0.1 <= sleeps[1] <= 0.3
    # An HTTP error is not a bad answer: no temperature bump.
    assert {r.body["temperature"] for r in stub.posts} == {0.0}


def test_persistent_5xx_ends_in_a_request_error(stub: StubServer) -> None:
    stub.reply(*[error_reply(500, "model crashed")] * 3)
    with pytest.raises(LLMRequestError, match=r"HTTP 500.*model crashed"):
        make(stub, max_retries=2).complete("p", max_tokens=1)
    assert len(stub.posts) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_client_errors_are_not_retried(stub: StubServer, status: int) -> None:
    stub.reply(error_reply(status, "bad field"))
    with pytest.raises(LLMRequestError, match=f"HTTP {status}"):
        make(stub).complete("p", max_tokens=1)
    assert len(stub.posts) == 1


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_connection_refused_ends_in_endpoint_unreachable_naming_the_url() -> None:
    url = _dead_url()
    sleeps = Sleeps()
    client = LiteLLMClient(LLMSettings(max_retries=2, backoff_s=0.01), url, "vllm", sleep=sleeps)
    started = time.perf_counter()
    with pytest.raises(EndpointUnreachable) as info:
        client.choose("Pick: ", OPTIONS)
    assert url in str(info.value) and "refused" in str(info.value)
    assert len(sleeps) == 2
    assert time.perf_counter() - started < 5
    assert client.meter.snapshot().calls == 1


def test_a_slow_server_times_out_into_endpoint_unreachable(stub: StubServer) -> None:
    stub.delay_s = 0.5
    stub.reply(text_reply("x"), text_reply("x"))
    client = make(stub, timeout_s=0.1, max_retries=1)
    with pytest.raises(EndpointUnreachable, match="timed out"):
        client.complete("p", max_tokens=1)
    assert len(stub.posts) == 2


def test_a_timeout_then_an_answer_succeeds(stub: StubServer) -> None:
    def slow(_: Recorded) -> tuple[int, dict[str, Any]]:
        time.sleep(0.5)
        return text_reply("late")

    stub.reply(slow, text_reply("on time"))
    out = make(stub, timeout_s=0.2).complete("p", max_tokens=1)
    assert out.text == "on time"
    assert out.usage.seconds >= 0.2


def test_closed_client_refuses_calls(stub: StubServer) -> None:
    client = make(stub)
    client.close()
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.complete("p", max_tokens=1)
    assert stub.posts == []


# -- health check and endpoint resolution -----------------------------------------------


def test_health_check_lists_models(stub: StubServer) -> None:
    assert make(stub).health_check()[0]["id"] == "m"


def test_health_check_fails_fast_on_a_dead_endpoint() -> None:
    url = _dead_url()
    client = LiteLLMClient(LLMSettings(), url, "vllm")
    started = time.perf_counter()
    with pytest.raises(EndpointUnreachable, match=url.replace(".", r"\.")) as info:
        client.health_check(timeout=2)
    assert "\n" not in str(info.value)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    ("entry", "kind"),
    [
        ({"id": "q", "owned_by": "vllm", "max_model_len": 4096}, "vllm"),
        ({"id": "m", "owned_by": "me", "permissions": []}, "llamacpp"),
        ({"id": "g.gguf", "owned_by": "llamacpp", "meta": {"n_ctx_train": 1}}, "llamacpp"),
        ({"id": "gpt-4o-mini", "owned_by": "system"}, "openai"),
    ],
)
def test_make_client_detects_the_server_family(
    stub: StubServer, entry: dict[str, Any], kind: str
) -> None:
    stub.models = [entry]
    client, url = make_client(LLMSettings(base_url=stub.base_url + "/"))
    assert url == stub.base_url
    assert isinstance(client, LiteLLMClient) and client.kind == kind
    # The configured default model is not served: the one served model is used instead.
    assert client.settings.model == entry["id"]


def test_make_client_keeps_an_explicit_kind_and_a_served_model(stub: StubServer) -> None:
    stub.models = [{"id": "a", "owned_by": "vllm"}, {"id": "b", "owned_by": "vllm"}]
    client, _ = make_client(LLMSettings(base_url=stub.base_url, kind="openai", model="b"))
    assert isinstance(client, LiteLLMClient)
    assert (client.kind, client.settings.model) == ("openai", "b")


def test_make_client_fails_fast_when_the_endpoint_is_down() -> None:
    with pytest.raises(EndpointUnreachable):
        make_client(LLMSettings(base_url=_dead_url()))


def test_detect_kind_without_models_is_openai() -> None:
    assert detect_kind([]) == "openai"


def test_choose_body_has_nothing_beyond_the_openai_fields_and_grammar(stub: StubServer) -> None:
    stub.reply(text_reply("go north"))
    make(stub).choose("Pick: ", OPTIONS)
    assert set(stub.posts[0].body) == {"model", "prompt", "max_tokens", "temperature", "grammar"}


def test_a_model_litellm_has_no_price_for_is_priced_zero_and_a_known_one_keeps_its_price(
    stub: StubServer, caplog: pytest.LogCaptureFixture
) -> None:
    """litellm prices every call; for a model it does not know each pricing searches its whole
    map and fails. The client registers price 0 for such a model (what litellm reports for it
    anyway) once, and leaves known models' prices alone."""
    from agent.llm.client import _import_litellm

    litellm = _import_litellm()
    unknown = "text-completion-openai/evolvent-test-unpriced"
    assert unknown not in litellm.model_cost
    stub.reply(text_reply(" ok"))
    stub.reply(chat_reply("ok"))
    make(stub, model="evolvent-test-unpriced").complete("p", max_tokens=4)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # said nothing
    entry = litellm.model_cost[unknown]
    assert (entry["input_cost_per_token"], entry["output_cost_per_token"]) == (0.0, 0.0)
    known = "gpt-4o-mini"
    before = dict(litellm.model_cost[known])
    make(stub, model=known, style="chat", kind="openai").complete("p", max_tokens=4)
    assert litellm.model_cost[known] == before and f"openai/{known}" not in litellm.model_cost
