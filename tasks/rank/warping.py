"""A cover's global alignment to its original: the dynamic-time-warping path WPD is measured on.

Qmax's serra09 alignment is local (the best matching stretch), so WPD needs a path of its own
over the whole song. It is computed on the same chroma the ranker already has for Qmax (HPCP,
pooled by the original's factor, the cover transposed by the optimal transposition index), with
cosine distance between frames and the classic symmetric steps (1, 0), (0, 1), (1, 1). Etude
aligns with MrMsDTW on chroma and onset features at 50 frames a second; at HPCP's 21.5 frames a
second (2048-sample hop) a frame is 47 ms, finer than the WPD values that matter (0.09-0.49 s).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from covermill.tasks.rank.cross_recurrence import optimal_transposition_index
from covermill.tasks.rank.fluency import warping_path_deviation


def cosine_distances(cover: np.ndarray, original: np.ndarray) -> np.ndarray:
    """(n, m) float32 1 - cosine similarity of chroma frames cover (n, 12) and original (m, 12);
    a silent frame (all zeros) is at distance 1 from everything."""
    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)

    # float32 rounding puts a frame a hair below 0 from itself; a negative cost would reward detours
    return np.ascontiguousarray(np.maximum(0.0, 1.0 - unit(cover) @ unit(original).T), dtype=np.float32)


@njit(cache=True)
def _accumulate(cost):
    n, m = cost.shape
    total = np.empty((n, m), np.float64)
    total[0, 0] = cost[0, 0]
    for j in range(1, m):
        total[0, j] = total[0, j - 1] + cost[0, j]
    for i in range(1, n):
        total[i, 0] = total[i - 1, 0] + cost[i, 0]
        for j in range(1, m):
            best = total[i - 1, j - 1]
            if total[i - 1, j] < best:
                best = total[i - 1, j]
            if total[i, j - 1] < best:
                best = total[i, j - 1]
            total[i, j] = best + cost[i, j]
    return total


@njit(cache=True)
def _backtrack(total):
    n, m = total.shape
    i, j = n - 1, m - 1
    path = np.empty((n + m, 2), np.int64)
    k = 0
    while True:
        path[k, 0] = i
        path[k, 1] = j
        k += 1
        if i == 0 and j == 0:
            break
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:  # ties prefer the diagonal, then the cover's step
            diagonal, up, left = total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]
            if diagonal <= up and diagonal <= left:
                i -= 1
                j -= 1
            elif up <= left:
                i -= 1
            else:
                j -= 1
    return path[:k][::-1]


def dtw_path(cost: np.ndarray) -> np.ndarray:
    """(k, 2) int64 pairs (cover frame, original frame) of the cheapest monotonic path from (0, 0)
    to (n-1, m-1) through a cost matrix (n, m) with steps (1, 0), (0, 1) and (1, 1)."""
    cost = np.ascontiguousarray(cost, dtype=np.float64)
    if cost.ndim != 2 or 0 in cost.shape:
        raise ValueError(f"a cost matrix needs two non-empty axes, got shape {cost.shape}")
    return _backtrack(_accumulate(cost))


def alignment_deviation(cover: np.ndarray, original: np.ndarray, frame_seconds: float) -> float | None:
    """WPD, seconds, of a cover's chroma (n, 12) aligned to the original's (m, 12), both at
    `frame_seconds` per frame: None when either is silent or too short for a path."""
    if len(cover) < 10 or len(original) < 10 or not cover.any() or not original.any():
        return None
    shift = optimal_transposition_index(original, cover)  # the cover rolled as cross_recurrence rolls it
    cover = np.roll(np.asarray(cover, dtype=np.float32), shift, axis=1) if shift else cover
    path = dtw_path(cosine_distances(cover, original))
    return warping_path_deviation(path[:, 0] * frame_seconds, path[:, 1] * frame_seconds)
