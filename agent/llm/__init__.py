"""The backbone LLM: interface, litellm client, embedded llama.cpp server, scripted fake.

Importing this package is cheap: litellm is imported on the first real call.
"""

from agent.errors import LLMRequestError
from agent.llm.base import Choice, Completion, LLMClient, Usage, UsageMeter
from agent.llm.client import LiteLLMClient
from agent.llm.embedded import EmbeddedServer, shared_server
from agent.llm.factory import make_client
from agent.llm.scripted import ScriptedCall, ScriptedLLM, ScriptExhausted

__all__ = [
    "Choice",
    "Completion",
    "EmbeddedServer",
    "LLMClient",
    "LLMRequestError",
    "LiteLLMClient",
    "ScriptExhausted",
    "ScriptedCall",
    "ScriptedLLM",
    "Usage",
    "UsageMeter",
    "make_client",
    "shared_server",
]
