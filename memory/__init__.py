"""Learned memory: Q-valued episodes, mistake notes and distilled experiences."""

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

__all__ = [
    "CachedEmbedder",
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
