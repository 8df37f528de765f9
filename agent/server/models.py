"""Request and response bodies of the REST API (the OpenAPI schema is generated from them)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

from memory.records import MemoryRecord


def _env_pattern() -> str:
    """Every valid environment id, levels included, as one regular expression."""
    from benchmarks.envs.registry import ENV_IDS
    from benchmarks.envs.tw_games import KINDS

    ids: list[str] = []
    for env in ENV_IDS:
        spec = KINDS.get(env.removeprefix("textworld:")) if env.startswith("textworld:") else None
        levels = spec.max_level if spec is not None else None
        if levels:
            choices = "|".join(str(n) for n in range(levels, 0, -1))
            ids.append(f"{re.escape(env)}(:level=({choices}))?")
        else:
            ids.append(re.escape(env))
    return "^(" + "|".join(ids) + ")$"


ENV_PATTERN = _env_pattern()
"""The shape of an environment id (levels are range-checked when the run is created)."""


def _no_bool_or_text(v: object) -> object:
    # JSON's 7.0 is an integer; true and "7" are not (pydantic's lax mode would take them).
    if isinstance(v, bool | str):
        raise ValueError("must be an integer")
    return v


def optional_schema(tp: Any, **constraints: Any) -> WithJsonSchema:
    """A parameter's schema without the ``null`` branch of ``X | None`` (a query string can
    leave a parameter out, it cannot send null)."""
    schema = TypeAdapter(tp).json_schema()
    return WithJsonSchema({**schema, **constraints})


JsonInt = Annotated[int, BeforeValidator(_no_bool_or_text)]

RunStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
FINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
"""No more events will come. ``interrupted`` is not final: the run can be resumed."""


def check_env_id(env: str) -> str:
    """The env id as given, or ValueError listing the valid ids."""
    from agent.errors import EvolventError
    from benchmarks.envs.registry import check_env_id as check
    from benchmarks.envs.registry import valid_ids_hint

    try:
        check(env)
    except EvolventError as e:
        msg = str(e)
        if "valid" not in msg:
            msg += f" ({valid_ids_hint(env)})"
        raise ValueError(msg) from None
    return env


class RunCreate(BaseModel):
    """A run: one episode of an environment (``env`` + ``seed``) or a free-text ``task``.

    Only the whitelisted settings below can be overridden per run.
    """

    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [{"env": "textworld:cooking", "seed": 7, "max_steps": 3}],
            "oneOf": [{"required": ["env"]}, {"required": ["task"]}],
        },
    )

    # Absent, not null: the schema says "string", and null is refused like any non-string.
    env: Annotated[
        str | None,
        Field(min_length=1, max_length=100),  # the pattern is checked with a readable message
        optional_schema(str, minLength=1, maxLength=100, pattern=ENV_PATTERN),
    ] = None
    """Environment id (``GET /v1/envs``), e.g. ``textworld:cooking`` or ``toy:keys``;
    TextWorld's treasure_hunter and coin_collector take ``:level=N``."""
    task: Annotated[
        str | None,
        Field(min_length=1, max_length=20_000),
        optional_schema(str, minLength=1, maxLength=20_000, pattern=r"\S"),
    ] = None
    """A free-text task instead of an environment."""
    seed: JsonInt = Field(default=0, ge=0, le=2**31 - 1)
    """Seed of the game."""
    max_steps: Annotated[
        JsonInt | None,
        Field(ge=1, le=10_000),
        optional_schema(int, minimum=1, maximum=10_000),
    ] = None
    """Step limit of the episode (default: the server's ``limits.max_steps``)."""
    token_budget: Annotated[
        JsonInt | None,
        Field(ge=1, le=100_000_000),
        optional_schema(int, minimum=1, maximum=100_000_000),
    ] = None
    """Prompt + completion tokens for the episode (default: ``limits.token_budget``)."""

    @field_validator("env", "task", "max_steps", "token_budget", mode="before")
    @classmethod
    def _not_null(cls, v: object) -> object:
        if v is None:
            raise ValueError("must not be null; leave the field out instead")
        return v

    @field_validator("env")
    @classmethod
    def _known_env(cls, v: str | None) -> str | None:
        return None if v is None else check_env_id(v)

    @field_validator("task")
    @classmethod
    def _task_text(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("task must not be blank")
        return v

    @model_validator(mode="after")
    def _one_target(self) -> RunCreate:
        if (self.env is None) == (self.task is None):
            raise ValueError('give exactly one of "env" or "task"')
        return self


class RunCreated(BaseModel):
    id: str
    status: RunStatus


class EpisodeSummary(BaseModel):
    """``EpisodeResult.summary()``: the outcome of the run's episode, without the steps."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    thread_id: str
    env: str
    seed: int
    task: str
    success: bool
    """The environment says the task was solved (a free-text task has no verifier)."""
    score: float
    max_score: float
    normalized_score: float
    steps: int
    actions: int
    failed_steps: int
    stop_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    tokens: int
    wall_s: float
    llm_s: float
    env_s: float
    memory_s: float = 0.0
    """Time in memory and tool retrieval and writes (embedding model + vector store)."""
    overhead_s: float
    """Wall time outside the LLM, the environment and memory: the framework's own cost."""
    memories_used: list[str] = Field(default_factory=list)
    memories_written: list[str] = Field(default_factory=list)
    tools_used: list[str] = Field(default_factory=list)
    tools_written: list[str] = Field(default_factory=list)


class RunView(BaseModel):
    """A run as ``GET /v1/runs/{id}`` reports it."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    id: str
    status: RunStatus
    """``succeeded``: the episode ran to its end (``result.success`` says whether it was won);
    ``failed``: an error stopped it (``error``); ``interrupted``: the server stopped while it
    ran (resume it); ``cancelled``: stopped on request."""
    env: str
    """Environment id, or ``text`` for a free-text task."""
    task: str | None
    seed: int
    max_steps: int
    token_budget: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    events: int
    """Step events recorded so far (``GET /v1/runs/{id}/events``)."""
    cancel_requested: bool
    error: str | None
    result: EpisodeSummary | None


class RunPage(BaseModel):
    items: list[RunView]
    limit: int
    offset: int
    next_offset: int | None


class EndEvent(BaseModel):
    """Data of the final ``end`` event of ``GET /v1/runs/{id}/events``."""

    status: RunStatus
    error: str | None
    result: EpisodeSummary | None


class MemoryItem(MemoryRecord):
    """A memory; ``similarity`` to the query when the list was searched."""

    similarity: float | None = None


class MemoryPage(BaseModel):
    items: list[MemoryItem]
    limit: int
    offset: int
    next_offset: int | None
    total: int | None
    """Memories of the kind(s) listed; None for a search (``query``)."""


class ImportResult(BaseModel):
    imported: int


class DeleteResult(BaseModel):
    deleted: int


class ToolRollback(BaseModel):
    """``POST /v1/tools/{name}/rollback``'s body."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    version: JsonInt = Field(ge=1, le=1_000_000)
    """The version whose body and doc come back (as a new version)."""


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "not ready"]
    checks: dict[str, str]
    """``ok`` or what failed, per dependency (``llm``, ``store``)."""


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


class ErrorBody(BaseModel):
    """Every error response: a readable ``detail``; ``errors`` per field for a 422."""

    detail: str
    errors: list[FieldError] = Field(default_factory=list)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error codes, all with ``ErrorBody``."""
    text = {
        401: "Missing or unknown API key",
        404: "Not found (or owned by another namespace)",
        409: "Not possible in the run's current status",
        413: "Request body too large",
        422: "Invalid request",
        429: "Too many concurrent runs",
        503: "Shutting down",
    }
    return {c: {"model": ErrorBody, "description": text.get(c, "Error")} for c in codes}
