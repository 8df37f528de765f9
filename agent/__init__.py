"""Evolvent's agent: the graph, its nodes, the LLM client, settings, CLI and Python API.

``from agent import Agent`` is the entry point; names are imported lazily so that the CLI
starts fast.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# No model hub, no telemetry, no price-map download: everything runs offline.
for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_k, _v)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from agent.agent import Agent
    from agent.config import Settings, load_settings
    from agent.result import EpisodeResult, StepView

__all__ = ["Agent", "EpisodeResult", "Settings", "StepView", "__version__", "load_settings"]

_LAZY = {
    "Agent": "agent.agent",
    "Settings": "agent.config",
    "load_settings": "agent.config",
    "EpisodeResult": "agent.result",
    "StepView": "agent.result",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
