"""Settings of ``evolvent serve``: the agent's settings plus API keys and server limits.

``ServeSettings`` extends ``agent.config.Settings``, so one config file holds both: the
agent sections as usual, a top-level ``api_keys`` and a ``[server]`` table. Environment
variables: ``EVOLVENT_API_KEYS="key1:ns1,key2:ns2"``, ``EVOLVENT_SERVER__MAX_CONCURRENT_RUNS=8``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import NoDecode

from agent.config import MemorySettings, Settings, format_validation
from agent.errors import ConfigError

DEFAULT_NAMESPACE = "default"
"""The namespace of every request when the server runs with ``--insecure-no-auth``."""


class ServerConfig(BaseModel):
    """Limits and switches of the REST service."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_concurrent_runs: int = Field(default=4, ge=1, le=256)
    """Runs executing at once (worker threads). More are queued or refused with 429."""
    max_queued_runs: int = Field(default=0, ge=0, le=100_000)
    """Accepted runs waiting for a worker; a new run beyond running + queued gets 429."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest request body (Content-Length and streamed bytes); larger ones get 413."""
    max_steps_limit: int = Field(default=500, ge=1, le=10_000)
    """The largest ``max_steps`` a run may ask for."""
    readiness_timeout_s: float = Field(default=5.0, gt=0)
    """How long ``/readyz`` waits for the LLM endpoint and the stores."""
    sse_ping_s: float = Field(default=15.0, gt=0)
    """Seconds between keep-alive comments on an idle event stream."""
    insecure_no_auth: bool = False
    """Serve without API keys; every request acts in namespace ``default``."""


def parse_api_keys(value: Any) -> dict[str, str]:
    """``"key1:ns1,key2:ns2"`` or a mapping -> {key: namespace}. Messages never show a key."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        pairs: list[tuple[str, str]] = []
        for i, part in enumerate(p.strip() for p in value.split(",")):
            if not part:
                continue
            key, sep, ns = part.rpartition(":")
            if not sep or not key.strip():
                raise ValueError(f"api key #{i + 1} must look like KEY:NAMESPACE")
            pairs.append((key.strip(), ns.strip()))
    elif isinstance(value, dict):
        pairs = [(str(k).strip(), str(v).strip()) for k, v in value.items()]
    else:
        raise ValueError('expected "KEY:NAMESPACE,..." or a table of KEY = "NAMESPACE"')
    keys: dict[str, str] = {}
    for i, (key, ns) in enumerate(pairs):
        if not key or any(c.isspace() for c in key):
            raise ValueError(f"api key #{i + 1} is empty or contains whitespace")
        if key in keys:
            raise ValueError(f"api key #{i + 1} is listed twice")
        try:
            MemorySettings(namespace=ns)
        except ValidationError:
            raise ValueError(
                f"api key #{i + 1}: namespace {ns!r} must be 1-48 letters, digits, '-' or '_'"
            ) from None
        keys[key] = ns
    return keys


class ServeSettings(Settings):
    """``Settings`` of the agent plus those of the server."""

    api_keys: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, repr=False)
    """Bearer API keys and the namespace each one acts in (``EVOLVENT_API_KEYS``)."""
    server: ServerConfig = ServerConfig()

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys(cls, v: Any) -> dict[str, str]:
        return parse_api_keys(v)


def load_serve_settings(config_file: Path | None = None, **server: Any) -> ServeSettings:
    """Defaults < config file (``--config`` or ``EVOLVENT_CONFIG``) < env vars < ``server``
    overrides (CLI flags for the ``[server]`` table; None values are ignored)."""
    previous = os.environ.get("EVOLVENT_CONFIG")
    try:
        if config_file is not None:
            os.environ["EVOLVENT_CONFIG"] = str(config_file)
        settings = ServeSettings()
        extra = {k: v for k, v in server.items() if v is not None}
        if extra:
            merged = {**settings.server.model_dump(), **extra}
            settings.server = ServerConfig.model_validate(merged)
        return settings
    except ValidationError as e:
        raise ConfigError(format_validation(e, ServeSettings)) from None
    finally:
        if config_file is not None:
            if previous is None:
                os.environ.pop("EVOLVENT_CONFIG", None)
            else:
                os.environ["EVOLVENT_CONFIG"] = previous


def check_auth(api_keys: dict[str, str], config: ServerConfig) -> None:
    """Refuse to serve without keys unless told to; refuse keys plus ``insecure_no_auth``."""
    if config.insecure_no_auth and api_keys:
        raise ConfigError(
            "API keys are configured and --insecure-no-auth was given: drop one of them"
        )
    if not api_keys and not config.insecure_no_auth:
        raise ConfigError(
            'no API keys configured: set EVOLVENT_API_KEYS="KEY:NAMESPACE,..." (or api_keys '
            "in the config file), or pass --insecure-no-auth to serve everyone as namespace "
            f"{DEFAULT_NAMESPACE!r}"
        )
