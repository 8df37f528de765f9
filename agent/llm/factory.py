"""Resolve the configured backbone into a ready client."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from agent.config import LLMSettings
from agent.llm.base import LLMClient
from agent.llm.calls import Kind
from agent.llm.client import LiteLLMClient, fetch_models
from agent.llm.embedded import shared_server

log = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 10.0


def make_client(settings: LLMSettings) -> tuple[LLMClient, str]:
    """A client for ``settings`` and the base URL it talks to.

    With ``base_url`` set, the endpoint is health-checked first (EndpointUnreachable fails
    the run before any episode starts). Unset, the process's embedded server is started.
    """
    if not settings.base_url:
        server = shared_server(settings)
        return LiteLLMClient(settings, server.base_url, "llamacpp"), server.base_url
    base_url = settings.base_url.rstrip("/")
    models = fetch_models(base_url, settings.api_key, min(settings.timeout_s, _PROBE_TIMEOUT_S))
    kind: Kind = detect_kind(models) if settings.kind == "auto" else settings.kind
    settings = _served_model(settings, models)
    log.info("LLM endpoint %s: kind %s, model %s", base_url, kind, settings.model)
    return LiteLLMClient(settings, base_url, kind), base_url


def detect_kind(models: Sequence[dict[str, Any]]) -> Kind:
    """Tell the server family from its ``GET /models`` entries.

    The URL says nothing (a loopback port may be vLLM or a llama.cpp server someone
    started), but each family fills ``/models`` in its own way.
    """
    for m in models:
        owner = str(m.get("owned_by", "")).lower()
        if owner == "vllm" or "max_model_len" in m:
            return "vllm"
        # llama.cpp's C++ server says "llamacpp" and adds "meta"; llama-cpp-python says "me"
        # and lists (empty) "permissions".
        if owner in ("llamacpp", "llama.cpp") or "meta" in m:
            return "llamacpp"
        if owner == "me" and "permissions" in m:
            return "llamacpp"
    return "openai"


def _served_model(settings: LLMSettings, models: Sequence[dict[str, Any]]) -> LLMSettings:
    """Use the only served model when the configured name is not served (``vllm serve X``
    answers 404 to any other name); with several, the configured name stands."""
    ids = [str(m["id"]) for m in models if "id" in m]
    if len(ids) == 1 and settings.model not in ids:
        log.info("model %r is not served here; using the served model %r", settings.model, ids[0])
        return settings.model_copy(update={"model": ids[0]})
    return settings
