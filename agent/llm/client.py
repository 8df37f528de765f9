"""The real backbone client: any OpenAI-compatible endpoint through litellm."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from agent.config import LLMSettings
from agent.errors import EndpointUnreachable, InvalidLLMOutput, LLMRequestError
from agent.llm.base import Choice, Completion, Usage, UsageMeter
from agent.llm.calls import (
    CallSpec,
    Kind,
    choice_call,
    completion_call,
    parse_choice,
    structured_call,
)

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

# At temperature 0 a retry would repeat the same unparseable answer.
_RETRY_TEMPERATURE = 0.7
_MAX_BACKOFF_S = 30.0
_NO_KEY = "sk-no-key"  # local servers ignore the key; the OpenAI SDK insists on one

_litellm_lock = threading.Lock()
_litellm: Any = None


def _import_litellm() -> Any:
    """Import litellm on first use: it costs ~2.7 s, which a CLI's --help should not pay."""
    global _litellm
    with _litellm_lock:
        if _litellm is None:
            # Without this every process first tries to download a price map (~7 s offline).
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm

            litellm.suppress_debug_info = True
            _litellm = litellm
        return _litellm


_priced: set[str] = set()


def _price_unknown_model(litellm: Any, route: str, provider: str, mode: str) -> None:
    """Give litellm a price of 0 for ``route`` (``provider/model``) when its price map has
    none (a self-hosted model: the embedded backbone, vLLM). litellm prices every call after
    it returns, in the call and again in a logging thread; for a model it does not know,
    each pricing searches its whole map and fails (~0.3 ms of CPU each, measured;
    ``benchmarks.llm_client_bench``). Known models keep their price; litellm reports 0 for an
    unknown one either way. The agent meters tokens itself."""
    if route in _priced:
        return
    with _litellm_lock:
        model = route.split("/", 1)[1]
        if route not in litellm.model_cost and model not in litellm.model_cost:
            litellm.register_model(
                {
                    route: {
                        "input_cost_per_token": 0.0,
                        "output_cost_per_token": 0.0,
                        # With these, litellm does not warn that cached tokens cost 0.
                        "cache_creation_input_token_cost": 0.0,
                        "cache_read_input_token_cost": 0.0,
                        "litellm_provider": provider,
                        "mode": mode,
                    }
                }
            )
        _priced.add(route)


@dataclass
class _Reply:
    text: str
    usage: Usage
    finish_reason: str | None


class _Transient(Exception):
    """A failure worth retrying: connection, timeout, 429 or 5xx."""

    def __init__(self, what: Literal["connection", "timeout", "status"], detail: str) -> None:
        super().__init__(detail)
        self.what = what
        self.detail = detail


class LiteLLMClient:
    """``LLMClient`` over litellm, with per-kind structured output and bounded retries."""

    def __init__(
        self,
        settings: LLMSettings,
        base_url: str,
        kind: Kind,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self.kind: Kind = kind
        self.meter = UsageMeter()
        self._sleep = sleep
        self._api_key = settings.api_key or _NO_KEY
        self._sdk_lock = threading.Lock()
        self._sdk: Any = None
        self._closed = False

    # -- the LLMClient interface -------------------------------------------------------

    def complete(
        self, prompt: str, *, max_tokens: int, stop: Sequence[str] | None = None
    ) -> Completion:
        spec = completion_call(self.settings.prompt_style, prompt, max_tokens, stop)
        text, usage = self._run(spec, lambda reply: reply.text)
        return Completion(text=text, usage=usage)

    def choose(self, prompt: str, options: Sequence[str]) -> Choice:
        options = list(options)
        spec = choice_call(self.kind, self.settings.prompt_style, prompt, options)
        index, usage = self._run(spec, lambda reply: parse_choice(reply.text, spec, options))
        return Choice(text=options[index], index=index, usage=usage)

    def structured(self, prompt: str, schema: type[T], *, max_tokens: int = 256) -> T:
        spec = structured_call(
            self.kind,
            self.settings.prompt_style,
            prompt,
            schema.model_json_schema(),
            schema.__name__,
            max_tokens,
        )

        def parse(reply: _Reply) -> T:
            try:
                return schema.model_validate_json(reply.text)
            except ValidationError as e:
                cut = " (cut off by max_tokens)" if reply.finish_reason == "length" else ""
                raise ValueError(f"{e.error_count()} validation error(s){cut}") from e

        value, _ = self._run(spec, parse)
        return value

    def close(self) -> None:
        with self._sdk_lock:
            sdk, self._sdk, self._closed = self._sdk, None, True
        if sdk is not None:
            sdk.close()

    # -- extras ------------------------------------------------------------------------

    def health_check(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """GET ``{base_url}/models``; the served models, or EndpointUnreachable at once."""
        return fetch_models(self.base_url, self.settings.api_key, timeout)

    # -- internals ---------------------------------------------------------------------

    def _run(self, spec: CallSpec, parse: Callable[[_Reply], R]) -> tuple[R, Usage]:
        """Send ``spec`` until ``parse`` accepts a reply; one retry budget for all failures."""
        started = time.perf_counter()
        tally = [Usage(calls=1)]  # the tokens of every attempt, failed ones included
        try:
            value = self._attempts(spec, parse, tally)
        finally:
            used = tally[0].model_copy(update={"seconds": time.perf_counter() - started})
            self.meter.add(used)
        return value, used

    def _attempts(self, spec: CallSpec, parse: Callable[[_Reply], R], tally: list[Usage]) -> R:
        attempts = self.settings.max_retries + 1
        transient: _Transient | None = None
        invalid: tuple[str, str] | None = None
        failures = 0
        for _ in range(attempts):
            if transient is not None:
                self._sleep(self._backoff(failures))
            temperature = self.settings.temperature
            if invalid is not None and temperature == 0:
                temperature = _RETRY_TEMPERATURE
            try:
                reply = self._send(spec, temperature)
            except _Transient as e:
                transient, invalid, failures = e, None, failures + 1
                continue
            transient = None
            tally[0] = tally[0] + reply.usage
            try:
                return parse(reply)
            except (ValueError, ValidationError) as e:
                # json.JSONDecodeError is a ValueError too.
                invalid = (reply.text, str(e))
        raise self._give_up(transient, invalid, attempts)

    def _give_up(
        self, transient: _Transient | None, invalid: tuple[str, str] | None, attempts: int
    ) -> Exception:
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if invalid is not None:
            answer, why = invalid
            return InvalidLLMOutput(
                f"the LLM answered {_clip(answer)!r} ({why}), still invalid after {tries}"
            )
        assert transient is not None
        if transient.what == "status":
            return LLMRequestError(f"{self.base_url}: {transient.detail} (after {tries})")
        return EndpointUnreachable(self.base_url, f"{transient.detail} after {tries}")

    def _backoff(self, failures: int) -> float:
        base = self.settings.backoff_s * 2 ** (failures - 1)
        return float(min(_MAX_BACKOFF_S, base * random.uniform(0.5, 1.5)))

    def _send(self, spec: CallSpec, temperature: float) -> _Reply:
        litellm = _import_litellm()
        kwargs: dict[str, Any] = {
            "api_base": self.base_url,
            "api_key": self._api_key,
            "max_tokens": spec.max_tokens,
            "temperature": temperature,
            "timeout": self.settings.timeout_s,
            "max_retries": 0,
            # A shared SDK client: litellm otherwise builds one (and an SSL context, ~45 ms)
            # per text-completion call, and keeps no connection alive.
            "client": self._client(),
        }
        if spec.stop:
            kwargs["stop"] = list(spec.stop)
        if spec.extra_body:
            kwargs["extra_body"] = spec.extra_body
        try:
            if spec.endpoint == "completion":
                model = f"text-completion-openai/{self.settings.model}"
                _price_unknown_model(litellm, model, "text-completion-openai", "completion")
                resp = litellm.text_completion(model=model, prompt=spec.prompt, **kwargs)
                first = resp.choices[0]
                text = first.text
            else:
                if spec.response_format is not None:
                    kwargs["response_format"] = spec.response_format
                model = f"openai/{self.settings.model}"
                _price_unknown_model(litellm, model, "openai", "chat")
                messages = [{"role": "user", "content": spec.prompt}]
                resp = litellm.completion(model=model, messages=messages, **kwargs)
                first = resp.choices[0]
                text = first.message.content
        except Exception as e:
            raise _classify(e) from e
        raw = getattr(resp, "usage", None)
        usage = Usage(
            prompt_tokens=int(getattr(raw, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(raw, "completion_tokens", 0) or 0),
        )
        return _Reply(text=text or "", usage=usage, finish_reason=first.finish_reason)

    def _client(self) -> Any:
        with self._sdk_lock:
            if self._closed:
                raise RuntimeError("LiteLLMClient is closed")
            if self._sdk is None:
                from openai import OpenAI

                self._sdk = OpenAI(
                    api_key=self._api_key,
                    base_url=self.base_url,
                    timeout=self.settings.timeout_s,
                    max_retries=0,  # retries are ours, so the budget is one number
                )
            return self._sdk


def _classify(exc: BaseException) -> Exception:
    """A ``_Transient`` for retryable failures; else ``LLMRequestError``."""
    import openai

    chain: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in chain:
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    # litellm reports a refused connection as an InternalServerError (500): look beneath it.
    for e in chain:
        if isinstance(e, httpx.TimeoutException | openai.APITimeoutError | TimeoutError):
            return _Transient("timeout", "timed out")
    for e in chain:
        if isinstance(e, httpx.TransportError | openai.APIConnectionError | ConnectionError):
            return _Transient("connection", _root_message(chain))
    status = getattr(exc, "status_code", None)
    message = _clip(str(getattr(exc, "message", None) or exc), 200)
    if isinstance(status, int) and (status == 429 or status >= 500):
        return _Transient("status", f"HTTP {status}: {message}")
    if isinstance(status, int):
        return LLMRequestError(f"the LLM endpoint rejected the request: HTTP {status}: {message}")
    return LLMRequestError(f"LLM call failed: {type(exc).__name__}: {message}")


def _root_message(chain: list[BaseException]) -> str:
    root = chain[-1]
    return _clip(str(root) or type(root).__name__, 120)


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fetch_models(base_url: str, api_key: str | None, timeout: float) -> list[dict[str, Any]]:
    """The entries of ``GET {base_url}/models``; EndpointUnreachable when it cannot answer."""
    url = base_url.rstrip("/") + "/models"
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(url, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise EndpointUnreachable(base_url, f"no answer within {timeout:g} s") from None
    except httpx.HTTPError as e:
        raise EndpointUnreachable(base_url, _clip(str(e) or type(e).__name__, 120)) from None
    if resp.status_code in (401, 403):
        raise LLMRequestError(f"{base_url} rejected the API key (HTTP {resp.status_code})")
    if resp.status_code == 404:
        return []  # it answers HTTP, it just does not list models
    if resp.status_code >= 400:
        raise EndpointUnreachable(base_url, f"GET /models answered HTTP {resp.status_code}")
    try:
        data = resp.json().get("data", [])
    except (json.JSONDecodeError, AttributeError):
        raise EndpointUnreachable(base_url, "GET /models did not answer JSON") from None
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []
