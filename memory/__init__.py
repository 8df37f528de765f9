"""Learned memory: Q-valued episodes, mistake notes and distilled experiences."""

from typing import TYPE_CHECKING, Any

from memory.base import VectorBackend
from memory.collection import TextCollection
from memory.embeddings import (
    CachedEmbedder,
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    default_embedder,
)
from memory.episodic import EpisodicMemory, EpisodicParams
from memory.inprocess import InProcessBackend
from memory.records import MemoryHit, MemoryRecord, Provenance
from memory.store import MemoryStore

if TYPE_CHECKING:
    from memory.chroma import ChromaBackend

__all__ = [
    "CachedEmbedder",
    "ChromaBackend",
    "Embedder",
    "EpisodicMemory",
    "EpisodicParams",
    "HashingEmbedder",
    "InProcessBackend",
    "MemoryHit",
    "MemoryRecord",
    "MemoryStore",
    "Provenance",
    "SentenceTransformerEmbedder",
    "TextCollection",
    "VectorBackend",
    "default_embedder",
]


def __getattr__(name: str) -> Any:
    # Lazy: importing chromadb costs ~0.6 s, which in-memory users and the CLI's --help skip.
    if name == "ChromaBackend":
        from memory.chroma import ChromaBackend

        return ChromaBackend
    raise AttributeError(f"module 'memory' has no attribute {name!r}")
