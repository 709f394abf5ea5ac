"""``dexter pair``: transfer pairs of real performances of the same score segment.

Segments are grouped first (``seg_group``: score and segment position), then
pairs are drawn by index arithmetic inside the groups: no quadratic scan, so
millions of pairs take seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DexterError
from ..fileio import save_npy, write_json
from .split import SPLITS
from .store import CodecStore


@dataclass
class PairReport:
    pairs: int
    possible: int
    unpaired: int
    groups: int
    per_split: dict
    seconds: float


def make_pairs(group: np.ndarray, eligible: np.ndarray, k: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw ordered (source, target) pairs of distinct segments of the same group.

    Parameters
    ----------
    group : ndarray of int, shape (S,)
        Group id of each segment (same score, same segment position).
    eligible : ndarray of bool, shape (S,)
        Segments that may be paired (real, not synthetic).
    k : int or None
        At most this many pairs (drawn uniformly without replacement); None: all.
    seed : int

    Returns
    -------
    pairs : ndarray of int64, shape (K, 2)
        Segment indices (source, target), sorted.
    unpaired : ndarray of int64
        Eligible segments whose group has no other eligible segment.
    """
    idx = np.flatnonzero(eligible)
    if len(idx) == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    order = idx[np.argsort(group[idx], kind="stable")]
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, len(g)])
    unpaired = np.sort(order[starts[sizes == 1]])
    ordered_pairs = sizes * (sizes - 1)  # ordered pairs per group
    cum = np.concatenate([[0], np.cumsum(ordered_pairs)])
    total = int(cum[-1])
    if total == 0:
        return np.zeros((0, 2), dtype=np.int64), unpaired
    rng = np.random.default_rng(seed)
    if k is None or k >= total:
        flat = np.arange(total, dtype=np.int64)
    else:
        flat = np.sort(rng.choice(total, size=int(k), replace=False))
    gi = np.searchsorted(cum, flat, side="right") - 1
    local = flat - cum[gi]
    m = sizes[gi] - 1
    a = local // m
    b = local % m
    b = b + (b >= a)  # skip the diagonal: target != source
    base = starts[gi]
    pairs = np.stack([order[base + a], order[base + b]], axis=1).astype(np.int64)
    return pairs, unpaired


def pair_store(store_path: Path, k: int | None = None, seed: int = 0) -> PairReport:
    """Write ``pairs.npy``, ``unpaired.npy`` and ``pairs.json`` next to a store.

    Parameters
    ----------
    store_path : Path
    k : int or None
        Maximum number of pairs; None for all.
    seed : int
    """
    from ..checks import check_seed

    if k is not None and k < 1:
        raise DexterError(f"--k must be at least 1 (leave it out for all pairs), got {k}")
    check_seed(seed)
    t0 = time.perf_counter()
    store = CodecStore(store_path)
    from ..fileio import check_writable

    check_writable(store.path / "pairs.npy", "pairs")
    group = np.asarray(store.seg_group)
    eligible = np.asarray(store.seg_synthetic) == 0
    pairs, unpaired = make_pairs(group, eligible, k, seed)
    sizes = np.bincount(group[eligible]) if eligible.any() else np.zeros(0, dtype=np.int64)
    possible = int((sizes * (sizes - 1)).sum())
    split = np.asarray(store.seg_split)
    per_split = {sp: int((split[pairs[:, 0]] == i).sum()) for i, sp in enumerate(SPLITS)}
    save_npy(store.path / "pairs.npy", pairs)
    save_npy(store.path / "unpaired.npy", unpaired)
    write_json(store.path / "pairs.json", {"k": k, "seed": seed, "pairs": int(len(pairs)), "possible": possible,
                                           "unpaired": int(len(unpaired)), "per_split": per_split,
                                           "columns": ["source_segment", "target_segment"]})
    return PairReport(len(pairs), possible, len(unpaired), int((sizes > 0).sum()), per_split,
                      time.perf_counter() - t0)
