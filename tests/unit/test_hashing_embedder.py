"""The hashing embedder (the fake used by fast tests and the overhead benchmark)."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from memory import HashingEmbedder


def reference(text: str, dim: int) -> np.ndarray:
    """The embedder's definition, feature by feature: each word and each character trigram
    of the word padded with ``#`` adds ±1 in the slot its hash picks; then unit length."""
    vec = np.zeros(dim, dtype=np.float64)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        padded = f"#{word}#"
        for f in [f"w:{word}", *(f"c:{padded[i : i + 3]}" for i in range(len(padded) - 2))]:
            h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
            vec[h % dim] += 1.0 if h >> 63 else -1.0
    norm = np.linalg.norm(vec)
    return vec / norm if norm > 0 else vec


def test_vectors_follow_the_definition_for_every_dimension() -> None:
    texts = ["Take the red apple from the counter.", "take apple", "", "Ünï 42 x", "a a a"]
    for dim in (256, 64, 7):  # the remembered slots depend on the dimension too
        got = HashingEmbedder(dim).embed(texts + texts)  # the second time from memory
        assert got.shape == (2 * len(texts), dim) and got.dtype == np.float32
        for row, text in zip(got, texts + texts, strict=True):
            assert np.allclose(row, reference(text, dim), atol=1e-6), (text, dim)
    assert not HashingEmbedder().embed([""]).any()


def test_similar_wording_gives_similar_vectors() -> None:
    a, b, c = HashingEmbedder().embed(["take the red apple", "take a red apple", "open door"])
    assert float(a @ b) > 0.8 > float(a @ c)
