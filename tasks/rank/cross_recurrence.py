"""The cross-recurrence plot and serra09 alignment of the Qmax protocol, equal to essentia's bit for bit.

essentia's ChromaCrossSimilarity (OTI, euclidean, not streaming) and CoverSongSimilarity (serra09)
are the reference (MTG/essentia src/algorithms/highlevel/chromacrosssimilarity.cpp,
coversongsimilarity.cpp, src/essentia/essentiamath.h), but they hold N x M doubles and sort every
row and column: 1.3 s and 100 MB for two one-minute songs, 18 s and 1.2 GB for two 3.5-minute ones.
This module reproduces every floating-point step of theirs in numba, 12-16x faster in one N x M
float32 matrix:
  * dotProduct = std::inner_product(..., 0.0): float32 products summed in a float64, in order,
    returned as float32 (which is why the distances are not a BLAS product);
  * pairwise distance = sqrt(float32(float32(mm - 2*mn) + nn));
  * percentile with essentia's float32 interpolation, found by an exact radix select instead of a
    sort; one deliberate difference: where k = (n - 1) * 0.095 is integral (n - 1 a multiple of 200)
    essentia's weights ceil(k) - k and k - floor(k) are both 0, so every threshold of that line is 0
    and the whole plot is empty (Qmax infinite for any cover); here sorted[k] gets the weight 1;
  * serra09 in float32 (multiples of 0.5, exact), keeping three rows instead of the whole matrix.

Apart from that integral k, one case is left to essentia: a distance that rounding made NaN (nearly identical stacked frames,
e.g. a song against itself). Where a NaN falls in essentia's std::sort is an accident of its
implementation, so `cross_recurrence` returns None and qmax.py asks essentia instead.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

F32 = np.float32


# ---------------------------------------------------------------- OTI ---------------------------

@njit(cache=True)
def _dot_f32(a, b):
    """essentia dotProduct: double accumulator of float32 products, result float32."""
    acc = 0.0
    for k in range(a.shape[0]):
        acc += np.float64(a[k] * b[k])
    return np.float32(acc)


@njit(cache=True)
def _global_chroma(x):
    """sumFrames (float32, sequential over frames) then normalize by max (if max != 0)."""
    n, b = x.shape
    out = np.zeros(b, np.float32)
    for j in range(b):
        s = np.float32(0.0)
        for i in range(n):
            s += x[i, j]
        out[j] = s
    m = out[0]
    for j in range(1, b):
        if out[j] > m:
            m = out[j]
    if m != np.float32(0.0):
        for j in range(b):
            out[j] = out[j] / m
    return out


@njit(cache=True)
def _oti(query, reference, nshifts):
    ga = _global_chroma(query)
    gb = _global_chroma(reference)
    best = -np.inf
    best_i = 0
    for i in range(nshifts + 1):
        v = _dot_f32(ga, np.roll(gb, i))  # std::rotate(begin, end - i, end) == np.roll(+i)
        if v > best:  # std::max_element: first maximum wins
            best = v
            best_i = i
    return best_i


def optimal_transposition_index(query: np.ndarray, reference: np.ndarray, nshifts: int = 12) -> int:
    return int(_oti(np.ascontiguousarray(query, F32), np.ascontiguousarray(reference, F32), nshifts))


def stack_frames(frames: np.ndarray, size: int = 9, stride: int = 1) -> np.ndarray:
    """essentia stackChromaFrames: rows i = 0, stride, ... < N - size*stride, each the concatenation
    of frames i, i+stride, ..., i+(size-1)*stride (so N - 9 rows for size 9, stride 1)."""
    if size == 1:
        return np.ascontiguousarray(frames, F32)
    n = len(frames)
    inc = size * stride
    if n < inc + 1:
        raise ValueError(f"too few frames ({n}) for stacking, need at least {inc + 1}")
    starts = np.arange(0, n - inc, stride)
    idx = starts[:, None] + np.arange(0, inc, stride)[None, :]
    return np.ascontiguousarray(frames[idx].reshape(len(starts), -1), F32)


# ---------------------------------------------------------------- distances ---------------------

@njit(cache=True)
def _self_dots(x):
    n = x.shape[0]
    out = np.empty(n, np.float32)
    for i in range(n):
        out[i] = _dot_f32(x[i], x[i])
    return out


@njit(cache=True)
def _pairwise(a, bt, out):
    """essentia pairwiseDistance, bit-exact: a (n, d) query stacks, bt (d, m) reference stacks
    transposed; out (n, m) float32."""
    n, d = a.shape
    m = bt.shape[1]
    aa = _self_dots(a)
    bb = np.empty(m, np.float32)
    for j in range(m):
        acc = 0.0
        for k in range(d):
            acc += np.float64(bt[k, j] * bt[k, j])
        bb[j] = np.float32(acc)
    acc = np.empty(m, np.float64)
    two = np.float32(2.0)
    for i in range(n):
        acc[:] = 0.0
        for k in range(d):
            aik = a[i, k]
            row = bt[k]
            for j in range(m):  # vectorises over j; the k order of each sum is essentia's
                acc[j] += np.float64(aik * row[j])
        ai = aa[i]
        for j in range(m):
            item = (ai - two * np.float32(acc[j])) + bb[j]
            out[i, j] = np.sqrt(item)  # negative rounding residue -> NaN, as in essentia
    return out


# ---------------------------------------------------------------- thresholds --------------------

def _percentile_k(n: int, percentile: float) -> tuple[int, int, np.float32, np.float32]:
    """essentia percentile(): q = float(float(p*100) / 100.), k = float((n-1)*q), float32 weights
    ceil(k) - k and k - floor(k), except that an integral k weighs sorted[k] by 1: essentia's weights
    are 0 and 0 there, a threshold of 0 that empties the plot (a 168 s song pooled to 1810 frames, 1801
    stacks, aligned with nothing)."""
    q = F32(F32(percentile) * F32(100))
    q = F32(np.float64(q) / 100.0)
    k = F32(n - 1) * q if n > 1 else F32(n) * q
    lo, hi = math.floor(k), math.ceil(k)
    w_lo, w_hi = F32(F32(hi) - k), F32(k - F32(lo))
    if lo == hi:  # the percentile is sorted[k] itself, not essentia's 0 * sorted[k]
        w_lo = F32(1)
    if n == 1:  # essentia reads sorted[1], past the end (undefined); it behaves as 0 there in practice
        return 0, 0, w_lo, F32(0)
    return lo, hi, w_lo, w_hi


# Exact order statistics without sorting: distances are >= 0 (or NaN), so their float32 bit patterns
# sort like uint32 and an MSD radix select (8 bits a pass) finds sorted[lo]; sorted[hi] (hi = lo+1)
# is then a or the smallest value above a. A line holding a NaN gets a NaN threshold (see above).

@njit(cache=True)
def _kth_bits(w, c, k, hist):
    """k-th smallest (0-based) of the uint32 keys w[:c] (destroys w); MSD radix select, 8 bits a pass."""
    while True:
        if c <= 24:
            for i in range(1, c):  # insertion sort
                x = w[i]
                j = i
                while j > 0 and w[j - 1] > x:
                    w[j] = w[j - 1]
                    j -= 1
                w[j] = x
            return w[k]
        mn = w[0]
        mx = w[0]
        for t in range(1, c):
            x = w[t]
            mn = min(mn, x)
            mx = max(mx, x)
        if mn == mx:
            return mn
        span = mx - mn
        shift = 0
        while (span >> shift) > 255:
            shift += 1
        nb = (span >> shift) + 1
        hist[:nb] = 0
        for t in range(c):
            hist[(w[t] - mn) >> shift] += 1
        below = 0
        b = 0
        while below + hist[b] <= k:
            below += hist[b]
            b += 1
        c2 = 0
        for t in range(c):
            x = w[t]
            if ((x - mn) >> shift) == b:
                w[c2] = x
                c2 += 1
        c = c2
        k -= below


@njit(cache=True)
def _line_threshold(line, work, hist, lo, hi, w_lo, w_hi):
    """essentia percentile of a float32 line (non-negative distances, maybe NaN); work is scratch."""
    n = line.shape[0]
    bits = line.view(np.uint32)
    nan = False
    for t in range(n):
        x = line[t]
        nan |= x != x
        work[t] = bits[t]
    if nan:  # only essentia's own sort knows where a NaN lands: the caller falls back to essentia
        return np.float32(np.nan)
    work[0] = _kth_bits(work, n, lo, hist)
    a = work[:1].view(np.float32)[0]
    b = a
    if hi != lo:
        cnt = 0
        nxt = np.float32(np.inf)
        for t in range(n):
            x = line[t]
            cnt += 1 if x <= a else 0
            nxt = min(nxt, x) if x > a else nxt
        if cnt < hi + 1:
            b = nxt
    return a * w_lo + b * w_hi


@njit(cache=True)
def _row_thresholds(d, lo, hi, w_lo, w_hi):
    n, m = d.shape
    out = np.empty(n, np.float32)
    work = np.empty(m, np.uint32)
    hist = np.empty(256, np.int64)
    for i in range(n):
        out[i] = _line_threshold(d[i], work, hist, lo, hi, w_lo, w_hi)
    return out


@njit(cache=True)
def _col_thresholds(d, lo, hi, w_lo, w_hi):
    n, m = d.shape
    out = np.empty(m, np.float32)
    B = 16
    blk = np.empty((B, n), np.float32)
    work = np.empty(n, np.uint32)
    hist = np.empty(256, np.int64)
    for j0 in range(0, m, B):
        jb = min(B, m - j0)
        for i in range(n):
            r = d[i, j0:j0 + jb]
            for jj in range(jb):
                blk[jj, i] = r[jj]
        for jj in range(jb):
            out[j0 + jj] = _line_threshold(blk[jj], work, hist, lo, hi, w_lo, w_hi)
    return out


# ---------------------------------------------------------------- public API --------------------

def distances(original: np.ndarray, cover: np.ndarray, frame_stack_size: int = 9, frame_stack_stride: int = 1,
              oti: bool = True, noti: int = 12) -> np.ndarray:
    """essentia's internal _pdistances: rows = original (query) stacks, cols = cover (reference) stacks."""
    query = np.ascontiguousarray(original, F32)
    reference = np.ascontiguousarray(cover, F32)
    if len(query) == 0 or len(reference) == 0:
        raise ValueError("empty chromagram")
    if oti:
        shift = optimal_transposition_index(query, reference, noti)
        if shift:
            reference = np.ascontiguousarray(np.roll(reference, shift, axis=1))
    a = stack_frames(query, frame_stack_size, frame_stack_stride)
    bt = np.ascontiguousarray(stack_frames(reference, frame_stack_size, frame_stack_stride).T)
    out = np.empty((a.shape[0], bt.shape[1]), F32)
    return _pairwise(a, bt, out)


def cross_recurrence(original: np.ndarray, cover: np.ndarray, binarize_percentile: float = 0.095,
                     frame_stack_size: int = 9, frame_stack_stride: int = 1, oti: bool = True) -> np.ndarray | None:
    """Same array as es.ChromaCrossSimilarity(frameStackSize, frameStackStride, binarizePercentile,
    oti)(original, cover) (but where a stack count n has an integral (n - 1) * percentile, see
    _percentile_k): float32 0/1, shape (len(original)-9, len(cover)-9) with the defaults;
    None when a distance is NaN (essentia must decide those)."""
    d = distances(original, cover, frame_stack_size, frame_stack_stride, oti)
    row = _row_thresholds(d, *_percentile_k(d.shape[1], binarize_percentile))  # one per query stack
    col = _col_thresholds(d, *_percentile_k(d.shape[0], binarize_percentile))  # one per reference stack
    if np.isnan(row).any() or np.isnan(col).any():
        return None
    _binarize_inplace(d, row, col)  # d becomes the plot in place
    return d


@njit(cache=True)
def _binarize_inplace(d, row, col):
    n, m = d.shape
    for i in range(n):
        r = row[i]
        for j in range(m):
            v = d[i, j]
            # essentia: 1 where v <= col[j], then 0 where v > r (a NaN threshold r zeroes nothing)
            d[i, j] = np.float32(1.0) if (v <= col[j] and not (v > r)) else np.float32(0.0)


@njit(cache=True)
def _serra09_max(plot, dis_onset, dis_extension):
    """max of essentia's serra09 score matrix (float32) with rolling rows; a row depends only on the
    two rows above, so each row is computed branch-free and vectorised."""
    n, m = plot.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    s2, s1, s0 = np.zeros(m, np.float32), np.zeros(m, np.float32), np.zeros(m, np.float32)
    g2, g1, g0 = np.empty(m, np.float32), np.empty(m, np.float32), np.empty(m, np.float32)
    best = np.float32(-2147483648.0)
    if n > 0 and m > 0:
        best = zero
    if n > 0:
        for j in range(m):
            g2[j] = dis_onset if plot[0, j] == one else dis_extension
    if n > 1:
        for j in range(m):
            g1[j] = dis_onset if plot[1, j] == one else dis_extension
    for i in range(2, n):
        p0 = plot[i]
        rb = zero
        for j in range(2, m):
            c1 = s1[j - 1]
            c2 = s2[j - 1]
            c3 = s1[j - 2]
            hit = max(max(c1, c2), c3) + one
            miss = max(max(max(zero, c1 - g1[j - 1]), c2 - g2[j - 1]), c3 - g1[j - 2])
            v = hit if p0[j] == one else miss
            s0[j] = v
            rb = max(rb, v)
        for j in range(m):
            g0[j] = dis_onset if p0[j] == one else dis_extension
        best = max(best, rb)
        s2, s1, s0 = s1, s0, s2
        g2, g1, g0 = g1, g0, g2
    return best


def best_alignment(plot: np.ndarray, dis_onset: float = 0.5, dis_extension: float = 0.5) -> float:
    """max of es.CoverSongSimilarity(alignmentType='serra09', ...)(plot)[0]."""
    p = np.ascontiguousarray(plot, F32)
    return float(_serra09_max(p, F32(dis_onset), F32(dis_extension)))
