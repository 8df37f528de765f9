"""Settings: one pydantic-settings object.

Precedence (highest first): CLI flags (passed as overrides), ``EVOLVENT_*`` environment
variables (nested with ``__``, e.g. ``EVOLVENT_LLM__BASE_URL``), a config file (TOML or YAML,
from ``--config`` or ``EVOLVENT_CONFIG``), then the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from agent.errors import ConfigError, validation_message
from memory.episodic import EpisodicParams
from memory.values import ValueParams

DEFAULT_HOME = Path(os.environ.get("EVOLVENT_HOME", Path.home() / ".evolvent"))

EndpointKind = Literal["auto", "llamacpp", "vllm", "openai"]


class LLMSettings(BaseModel):
    """The backbone LLM."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    base_url: str | None = None
    """OpenAI-compatible base URL (e.g. ``http://127.0.0.1:8000/v1`` for ``vllm serve``).
    Unset: start the embedded llama.cpp server with Gemma 3 270M on a free loopback port."""
    model: str = "gemma-3-270m"
    """Model name sent to the endpoint (vLLM: the served model name)."""
    api_key: str | None = None
    """API key for hosted endpoints; local servers accept any value."""
    kind: EndpointKind = "auto"
    """How structured output is requested: ``llamacpp`` (GBNF grammar / json_object+schema),
    ``vllm`` (``structured_outputs``), ``openai`` (``json_schema``). ``auto`` asks the
    endpoint's ``GET /models`` (``owned_by``: vLLM, llama.cpp) and falls back to ``openai``;
    the embedded server is always ``llamacpp``."""
    prompt_style: Literal["completion", "chat"] = "completion"
    """``completion`` for base models (/v1/completions), ``chat`` for instruction-tuned ones."""
    timeout_s: float = Field(default=60.0, gt=0)
    """Per-request timeout in seconds."""
    max_retries: int = Field(default=3, ge=0, le=10)
    """Retries for connection errors, timeouts, 5xx and unparseable output."""
    backoff_s: float = Field(default=0.5, ge=0)
    """First retry delay; doubles on each retry (with jitter)."""
    temperature: float = Field(default=0.0, ge=0, le=2)
    """Sampling temperature (0 = greedy, reproducible)."""
    n_ctx: int = Field(default=4096, ge=512)
    """Context window of the embedded server."""
    n_threads: int | None = None
    """CPU threads of the embedded server (default: usable cores minus one, at least 1: a
    busy extra thread slows llama.cpp's decoding by an order of magnitude)."""
    startup_timeout_s: float = Field(default=120.0, gt=0)
    """How long to wait for the embedded server to become healthy."""


class MemorySettings(BaseModel):
    """Where learned state lives."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: Path | None = None
    """Directory of the embedded store (Chroma PersistentClient, tool registry);
    default ``<home>/memory``. Read it through ``Settings.memory_path``."""
    url: str | None = None
    """Chroma server URL (``http://127.0.0.1:8000``) to share memory between processes."""
    namespace: str = "default"
    """Isolates memories and tools of different users or experiments."""
    replica_limit: int = Field(default=5_000, ge=0)
    """Embedded store: the writing process reads collections of up to this many records from
    a copy it keeps in memory (``memory/replica.py``: an exact search in tens of
    microseconds, where a query through Chroma takes about a millisecond); larger ones
    through Chroma's index. 0: every read goes to Chroma."""
    write_batch: int = Field(default=64, ge=1)
    """Embedded store: the writer journals its writes to collections it reads from its copy
    (one synced line each, ``memory/journal.py``) and sends them to Chroma together once
    this many wait, or after ``write_batch_s``, before any direct read of Chroma, and at
    close: a Chroma write costs about 4 ms however few records it holds. A process that
    dies leaves the journal, which the next writer sends. Other processes reading the store
    see Chroma, so up to this many writes behind. 1: each write goes to Chroma at once."""
    write_batch_s: float = Field(default=5.0, gt=0)
    """Most seconds a journaled write waits before it is sent to Chroma."""
    fit_process: bool = True
    """Refit the step values in a worker process right after each episode is learned, while
    this one goes on (the episode's end, the next game's reset), once a fit takes over a
    millisecond and the process keeps learning; only with two or more cores. The same
    weights, bit for bit, as a fit in this process (``memory/fitworker.py``)."""
    top_k: int = Field(default=3, ge=0, le=50)
    """Episodic memories injected into the planner prompt."""
    prompt_token_budget: int = Field(default=400, ge=0)
    """Approximate token budget for all memories in one prompt."""
    action_hints: int = Field(default=3, ge=0, le=20)
    """Actions proposed per step from step-level memory, shown to the LLM (0: off)."""
    action_policy: Literal["llm", "follow"] = "llm"
    """``llm``: the LLM chooses, seeing the proposals; ``follow``: take the top proposal
    without asking the LLM when its learned value is at least ``follow_min_value``."""
    follow_min_value: float = 0.5
    """Learned value a proposal needs before the ``follow`` policy takes it."""
    step_values: bool = True
    """Propose actions from the step-value function over generic text features
    (``memory/values.py``), which carries over to games never seen, rather than from the
    per-state action memory. Under ``follow`` its best action is always taken (while
    learning: with its exploration); ``follow_min_value`` applies to the per-state memory.
    Episodes teach only the kind in use: the step values, or with this off the per-state
    memory."""
    notebook_batch: int = Field(default=4, ge=0)
    """Failures per mistake-notebook update; each update re-plays the batch twice to
    decide whether to keep it (0: no mistake notes)."""
    distill_every: int = Field(default=5, ge=0)
    """Episodes between experience distillations (0: none)."""
    episodic: EpisodicParams = Field(default_factory=EpisodicParams)
    """The Q-valued episodic memory's retrieval and update rule (``[memory.episodic]``,
    ``EVOLVENT_MEMORY__EPISODIC__ALPHA``): similarity threshold ``delta``, candidates
    ``k1``/``k2``, Q weight ``lam``, exploration ``epsilon``, learning rate ``alpha``, ..."""
    values: ValueParams = Field(default_factory=ValueParams)
    """The step-value learner (``[memory.values]``, ``EVOLVENT_MEMORY__VALUES__GAMMA``):
    discount ``gamma``, terminal bonuses, ``instruction_credit``, ``enabler_credit``,
    ``ridge``, and its exploration (``epsilon``, ``epsilon_decay``, ``epsilon_min``,
    ``novelty_bonus``, ``coverage_bonus``, ``untried_floor``)."""

    @field_validator("namespace")
    @classmethod
    def _namespace_ok(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c in "-_" for c in v) or len(v) > 48:
            raise ValueError("namespace must be 1-48 characters of letters, digits, '-' or '_'")
        return v


class SandboxSettings(BaseModel):
    """Where synthesized code runs."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    backend: Literal["auto", "bwrap", "docker", "subprocess"] = "auto"
    """``auto`` picks docker when an engine is reachable, else bwrap, else subprocess."""
    timeout_s: float = Field(default=10.0, gt=0)
    """Wall-clock limit per sandboxed run."""


class LimitSettings(BaseModel):
    """Typed stop conditions of an episode."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    max_steps: int = Field(default=20, ge=1, le=10_000)
    """Environment actions per episode."""
    token_budget: int = Field(default=200_000, ge=1)
    """Prompt + completion tokens per episode."""
    stall_window: int = Field(default=6, ge=2)
    """Steps without progress (or repeating actions) before a mid-episode reflection."""
    max_reflections: int = Field(default=2, ge=0)
    """Mid-episode reflections per episode."""


Durability = Literal["sync", "async", "exit"]
"""When the graph's checkpoints are written (``AgentSettings.durability``)."""


class AgentSettings(BaseModel):
    """Prompting knobs of the nodes."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    plan_max_tokens: int = Field(default=48, ge=0)
    """Tokens for the planner's subgoals (0 disables the LLM plan)."""
    reflection_max_tokens: int = Field(default=32, ge=0)
    """Tokens for a mid-episode reflection (0: only the detected loop is noted)."""
    history_steps: int = Field(default=12, ge=1)
    """Most recent steps shown to the executor."""
    learn: bool = True
    """Write memories, update values and mine tools after episodes (False: evaluate frozen)."""
    use_tools: bool = True
    """Offer learned tools to the executor and mine new ones (False: actions only)."""
    tool_policy: Literal["llm", "follow"] = "llm"
    """``llm``: offered tools are options of the LLM's constrained choice. ``follow``: the
    most relevant offered tool whose utility is at least ``tool_min_utility`` runs without
    asking the LLM (each instantiation at most once per episode), so a weak model still gets
    to use — and so to rate — its tools; when the step memory has chosen the action already
    (``memory.action_policy = follow``), only a macro whose first step is that action."""
    tool_min_utility: float = Field(default=0.5, ge=0, le=1)
    """Utility (Laplace-smoothed rate of uses that completed without losing the game; 0.5
    for an unused tool) a tool needs to be followed."""
    tool_guard_k: int = Field(default=2, ge=0)
    """Under ``memory.action_policy = follow``, once the step-value function is active, a
    macro goes on to its next step only if that step is among the values' ``tool_guard_k``
    best actions at that point; otherwise it stops there, and the use counts as stopped
    early. 0: macros always run to the end."""
    state_window: int = Field(default=2, ge=0)
    """Previous (action, observation) pairs that, with the current observation, make the
    state that step-level memory is keyed by."""
    max_options: int = Field(default=64, ge=0)
    """Most admissible actions offered at a step; beyond it the executor offers those most
    relevant to the task and the observation (``agent/shortlist.py``). 0: all of them."""
    durability: Durability = "sync"
    """When the graph's checkpoints are written (LangGraph's durability). ``sync``: after
    every node, before the next one runs, so a process killed at any point resumes from its
    last step, and a step already reported (a REST event, a CLI line) is never played again.
    ``async``: the same checkpoints, written while the next node runs; after a kill the last
    step may be lost, and a resume plays it again (perhaps differently). ``exit``: once, when
    the episode's run ends, also when it ends with an error or an interrupt; a process
    killed outright (SIGKILL, power loss) leaves no checkpoint, and the episode is played
    again from its start (by ``evolvent run --resume``, ``evolvent bench`` and the REST
    service's resume; steps already reported are then played again). The cheaper modes cut
    the framework's own time per step (``python -m benchmarks.overhead_bench
    --durability``)."""
    steps_per_node: int = Field(default=1, ge=1)
    """Executor steps played in one run of the executor node before it hands back to the
    graph (sooner when the episode ends or a stall calls for the reflector). 1: every step
    is a node of its own, checkpointed (``durability``) and reported (a REST event, a CLI
    line) as it ends. More: the steps of a run are checkpointed and reported together when
    it hands back, and each saves the graph's super-step and checkpoint (a process killed
    mid-run resumes from the run's start and plays its steps again). With ``durability =
    exit`` nothing is checkpointed between nodes anyway, so a high value (the episode's
    step limit) costs nothing but the grouping of reports."""
    freeze_heap: bool = True
    """After the process's first episode, collect the garbage once and freeze what is left
    out of the garbage collector's full passes (``agent/heap.py``): these otherwise rescan
    the half a million long-lived objects of loaded libraries every second or so (about
    300 ms each). Once per process; objects frozen then that later become cyclic garbage
    are not freed."""
    skip_no_ops: bool = True
    """Leave out of the executor's options an action that, earlier in the episode, was taken
    in the very observation the agent sees now and left it unchanged (it did nothing then, so
    it would do nothing again), or was taken there twice without reward and led to the same
    observation both times (a loop); never all of them."""


class Settings(BaseSettings):
    """All settings of Evolvent."""

    model_config = SettingsConfigDict(
        env_prefix="EVOLVENT_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
        allow_inf_nan=False,  # EVOLVENT_MEMORY__EPISODIC__Q0=nan would reach the memories
    )

    llm: LLMSettings = LLMSettings()
    memory: MemorySettings = MemorySettings()
    sandbox: SandboxSettings = SandboxSettings()
    limits: LimitSettings = LimitSettings()
    agent: AgentSettings = AgentSettings()
    home: Path = DEFAULT_HOME
    """Base directory for state (checkpoints, game cache) when not set individually."""
    checkpoint_db: Path | None = None
    """SQLite checkpoint database (default: ``<home>/checkpoints.sqlite``)."""
    games_dir: Path | None = None
    """Cache of generated games (default: ``<home>/games``)."""
    # One config file serves every command: `evolvent serve` reads these two (typed in
    # agent/server/config.py); the other commands accept and ignore them.
    api_keys: Any = Field(default=None, repr=False, exclude=True)
    """API keys of ``evolvent serve`` (``EVOLVENT_API_KEYS``)."""
    server: Any = Field(default_factory=dict)
    """Limits of ``evolvent serve`` (``[server]`` table)."""

    @field_validator("home", "checkpoint_db", "games_dir", mode="before")
    @classmethod
    def _not_blank(cls, v: Any) -> Any:
        # EVOLVENT_HOME= (set, but empty) once meant the current directory.
        if isinstance(v, str) and not v.strip():
            raise ValueError("must not be blank (leave it unset for the default)")
        return v

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_db or self.home / "checkpoints.sqlite"

    @property
    def memory_path(self) -> Path:
        return self.memory.path or self.home / "memory"

    @property
    def games_path(self) -> Path:
        return self.games_dir or self.home / "games"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        cfg = os.environ.get("EVOLVENT_CONFIG")
        if cfg:
            sources.append(_file_source(settings_cls, Path(cfg)))
        return tuple(sources)


def _file_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"config file must be .toml, .yaml or .yml: {path}")
    import tomllib

    import yaml

    # A file that does not parse, or holds no table of settings, is the user's mistake:
    # one line naming it, not a traceback from inside the settings sources.
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError, UnicodeDecodeError, OSError) as e:
        why = " ".join(str(e).split())
        raise ConfigError(f"cannot read config file {path}: {why}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a table of settings (sections such as llm, "
            f"memory, agent), not a {type(data).__name__}"
        )
    # What pydantic-settings' TOML and YAML sources make of a file read whole (no table
    # header or section is configured): the parsed table as init values.
    return InitSettingsSource(settings_cls, data or {})


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, a config file, env vars and explicit overrides.

    ``overrides`` are nested dicts or dotted keys (``{"llm.base_url": "..."}``); ``None``
    values are ignored so that unset CLI flags don't mask env vars.
    """
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.split(".")
        cur = nested
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value
    previous = os.environ.get("EVOLVENT_CONFIG")
    try:
        if config_file is not None:
            os.environ["EVOLVENT_CONFIG"] = str(config_file)
        base = Settings()
        if not nested:
            return base
        merged = _deep_merge(base.model_dump(), nested)
        return Settings.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(format_validation(e)) from None
    finally:
        if config_file is not None:
            if previous is None:
                os.environ.pop("EVOLVENT_CONFIG", None)
            else:
                os.environ["EVOLVENT_CONFIG"] = previous


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def format_validation(e: ValidationError, root: type[BaseModel] | None = None) -> str:
    """``invalid settings: SECTION.KEY: problem; ...``; an unknown key lists the valid ones
    of its section (``root``: the settings model validated, ``Settings`` by default)."""
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":  # a typo, most likely: say what there is
            valid = ", ".join(_valid_keys(err["loc"], root or Settings))
            lines.append(f"{loc}: unknown setting (valid: {valid})")
        else:
            lines.append(f"{loc}: {validation_message(err)}")
    return "invalid settings: " + "; ".join(lines)


def _valid_keys(loc: tuple[int | str, ...], root: type[BaseModel]) -> list[str]:
    """The setting names of the section that ``loc`` (an unknown key) is in."""
    model: type[BaseModel] = root
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)
