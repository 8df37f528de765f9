"""Ridge regression over binary hashed features by conjugate gradients: the step values'
fit (``memory/values.py``), in this process or in a worker process (``memory/fitworker.py``).

Rows are given as arrays of feature indices (below ``DIM``). A solve runs in the compact
space of the features some row holds (``Solved``: those features and their weights) and is
warm-started from weights in the same compact form (``Start``: an earlier solve's).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from memory.textfeatures import DIM


class Solved(NamedTuple):
    """A solve's result in the compact space: the weights of ``active`` for each target;
    every other feature's weight is 0."""

    active: np.ndarray
    """The features some row holds, sorted."""
    weights: list[np.ndarray]
    """One array per target, aligned with ``active``."""

    def expand(self) -> list[np.ndarray]:
        """Each target's weights over the whole feature space."""
        return [expand(self.active, w) for w in self.weights]


Start = tuple[np.ndarray, np.ndarray]
"""Weights in the compact form of ``Solved``: features (each once) and their weights; every
other feature's weight is 0."""

NO_START: Start = (np.zeros(0, dtype=np.intp), np.zeros(0))


def expand(active: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weights over the whole feature space: ``weights`` at ``active``, 0 elsewhere."""
    out = np.zeros(DIM)
    out[active] = weights
    return out


def combine(first: Start, second: Start, scale: float) -> np.ndarray:
    """``expand(*first) + scale * expand(*second)`` over the whole feature space, built as
    one array: when both weights come from one solve (the same ``active``, as ``Solved``
    gives them), they are combined in the compact space first. Four whole-space arrays
    (2 MB each) a call were about 0.7 ms of allocation and page faults in the agent's busy
    process; the numbers are the same (each feature's ``w1 + scale * w2``, or either
    alone)."""
    (a1, w1), (a2, w2) = first, second
    if scale == 0.0 or len(a2) == 0:
        return expand(a1, w1)
    if a1 is a2 or np.array_equal(a1, a2):
        return expand(a1, w1 + scale * w2)
    out = expand(a1, w1)
    out[a2] += scale * w2
    return out


def ridge_fit(
    feats: Sequence[np.ndarray], y: np.ndarray, ridge: float, iterations: int, start: np.ndarray
) -> np.ndarray:
    """Weights ``w`` minimizing ``|Xw - y|^2 + ridge |w|^2`` for binary rows ``X`` given as
    index arrays, by conjugate gradients on the normal equations (``ridge_fits``)."""
    return ridge_fits(feats, [y], ridge, iterations, [start])[0]


def ridge_fits(
    feats: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    ridge: float,
    iterations: int,
    starts: Sequence[np.ndarray],
) -> list[np.ndarray]:
    """``ridge_fit`` of each target (from its start) on the same rows (``ridge_solve``),
    as weights over the whole feature space."""
    held = [np.flatnonzero(s) for s in starts]
    compact = [(i, s[i]) for i, s in zip(held, starts, strict=True)]
    return ridge_solve(feats, targets, ridge, iterations, compact).expand()


def ridge_solve(
    feats: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    ridge: float,
    iterations: int,
    starts: Sequence[Start],
) -> Solved:
    """``ridge_fit`` of each target (from its start, in compact form) on the same rows,
    which are turned into a matrix once (about a fifth of a fit's time).

    Only the features some row holds take part (the others' optimum is 0): the solve runs
    in that compact space, a few thousand dimensions instead of ``DIM``, with ``X`` and its
    transpose as compressed sparse rows (a product costs one pass over the nonzeros, about
    half the time of numpy's gather and weighted bincount), so a fit costs milliseconds.
    The targets are solved at the same time, the second and later in worker threads: the
    sparse products, most of a large solve's time, release the interpreter lock (real
    cooking rows, both models: 462 rows 7.3 -> 5.1 ms, 877 rows 11.0 -> 7.3 ms; about the
    same near a hundred rows). Each solve does exactly what it would alone."""
    from scipy.sparse import csr_matrix

    counts = np.array([len(f) for f in feats])
    keep = counts > 0
    if not keep.any():
        return Solved(np.zeros(0, dtype=np.intp), [np.zeros(0) for _ in targets])
    feats = [f for f, k in zip(feats, keep, strict=True) if k]
    counts = counts[keep]
    active, local = np.unique(np.concatenate(feats), return_inverse=True)
    rows = np.concatenate([[0], np.cumsum(counts)])
    x = csr_matrix((np.ones(len(local)), local, rows), shape=(len(feats), len(active)))
    xt = x.T.tocsr()
    jobs = [
        partial(_conjugate_gradients, x, xt, y[keep], ridge, iterations, _at(start, active))
        for y, start in zip(targets, starts, strict=True)
    ]
    if len(jobs) == 1:
        return Solved(active, [job() for job in jobs])
    others = [_fit_pool().submit(job) for job in jobs[1:]]
    first = jobs[0]()
    return Solved(active, [first, *(f.result() for f in others)])


def _at(start: Start, active: np.ndarray) -> np.ndarray:
    """``start``'s weights of the (sorted) ``active`` features, 0 for those it lacks: what
    ``expand(*start)[active]`` gives, without the whole-space array."""
    features, weights = start
    out = np.zeros(len(active))
    if len(features) and len(active):
        pos = np.searchsorted(active, features)
        held = active[np.minimum(pos, len(active) - 1)] == features
        out[pos[held]] = weights[held]
    return out


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _fit_pool() -> ThreadPoolExecutor:
    """The worker threads of ``ridge_fits`` (made on first use; idle threads cost nothing)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="evolvent-fit")
        return _POOL


def _forget_pool_in_child() -> None:
    """A forked child has none of its parent's threads, but the pool would believe its
    workers exist and queue work that nobody runs: the child makes its own."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


def _matvec() -> Any:
    """scipy's kernel behind ``csr_matrix @ vector`` (``y += A x`` into a given ``y``),
    called directly: the operator's checks and dispatch cost more than the product at
    these sizes. ``None`` when this scipy does not have it (the operator is used)."""
    try:
        from scipy.sparse._sparsetools import csr_matvec
    except ImportError:  # pragma: no cover - a scipy that moved its kernels
        return None
    return csr_matvec


class _Normal:
    """``v -> X^T X v + ridge v`` for one solve, into buffers made once; the same floating
    point operations, in the same order, as ``xt @ (x @ v) + ridge * v``."""

    def __init__(self, x: Any, xt: Any, ridge: float) -> None:
        self.x, self.xt, self.ridge = x, xt, ridge
        self.kernel = _matvec()
        self._xv = np.zeros(x.shape[0])
        self._tmp = np.zeros(x.shape[1])

    def product(self, m: Any, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``m @ v`` into ``out``."""
        if self.kernel is None:
            out[:] = m @ v
            return out
        out.fill(0.0)
        self.kernel(m.shape[0], m.shape[1], m.indptr, m.indices, m.data, v, out)
        return out

    def apply(self, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        self.product(self.xt, self.product(self.x, v, self._xv), out)
        np.multiply(v, self.ridge, out=self._tmp)
        out += self._tmp
        return out


def _conjugate_gradients(
    x: Any,
    xt: Any,
    y: np.ndarray,
    ridge: float,
    iterations: int,
    start: np.ndarray,
) -> np.ndarray:
    """The weights from ``start`` (its own array, aligned with the solve's features)."""
    normal = _Normal(x, xt, ridge)
    w = start
    r = xt @ y - normal.apply(w, np.empty_like(w))
    d = r.copy()
    ad, scaled = np.empty_like(w), np.empty_like(w)
    rs = float(r @ r)
    for _ in range(iterations):
        if rs < 1e-12:
            break
        normal.apply(d, ad)
        step = rs / float(d @ ad)
        w += np.multiply(d, step, out=scaled)
        r -= np.multiply(ad, step, out=scaled)
        rs_new = float(r @ r)
        # d = r + (rs_new / rs) * d
        np.multiply(d, rs_new / rs, out=d)
        d += r
        rs = rs_new
    return w
