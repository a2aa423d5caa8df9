"""Fluency: would a pianist play this, and would a listener hear it as music rather than a transcription?

Etude (arXiv 2509.16522) measured human piano covers against the systems with three numbers, each
implemented here from its definition and its evaluation code (github chenkigba/Etude,
etude/evaluation/metrics), with its defaults:
- RGC, rhythmic grid consistency: the mean distance of the commonest inter-onset intervals from
  integer multiples of the best grid among them (lower = steadier grid). Humans 0.042, Etude 0.020,
  AMT-APC 0.114.
- IPE, IOI pattern entropy: Shannon entropy, in bits, of 8-grams of inter-onset intervals clustered
  on a log scale (rhythmic variety). Humans 10.13, Etude 9.02, AMT-APC 10.69. It grows with the
  number of onsets (at most log2 of the number of 8-grams), so it compares songs of like length.
- WPD, warping-path deviation: the standard deviation, in seconds, of a cover-to-original alignment
  path from the straight line fitted to it (how much the cover's tempo wanders). Humans 0.49,
  Etude 0.21, AMT-APC 0.09.
And one of covermill's own: the share of onset groups that two hands can strike (each hand at most
5 keys within a span of 14 semitones).

Every function takes plain arrays (shapes in the docstrings) and returns a number, or None when
there is too little to measure.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

from covermill.models.notes import Note

# Etude's evaluation defaults (etude/config/schema.py, etude/evaluation/metrics/*.py)
RGC_TOP_K = 8
RGC_DIGITS = 4  # IOIs rounded to 0.1 ms before they are counted
RGC_MIN_TAU = 0.01  # s; a grid finer than this is not a grid
IPE_N_GRAM = 8
IPE_CLUSTERS = 16
IPE_IOI_RANGE = (0.0625, 4.0)  # s; IOIs are clipped into it before clustering
WPD_TRIM_SECONDS = 10.0  # the path's first and last 10 s are left out (count-ins, fade-outs)

HAND_KEYS = 5  # fingers
HAND_SPAN = 14  # semitones a hand reaches at once (a ninth and more; a tenth is 15-16)
CHORD_WINDOW = 0.03  # s; onsets this close are struck together (the arranger's chord window)


def unique_onsets(notes: list[Note]) -> np.ndarray:
    """Sorted distinct onset times, shape (n,)."""
    return np.unique(np.array([n.start for n in notes], dtype=float))


def rhythmic_grid_consistency(onsets: np.ndarray, top_k: int = RGC_TOP_K) -> float | None:
    """RGC of onset times `onsets` (n,): for each of the `top_k` commonest IOIs as the grid period
    tau, the mean |IOI/tau - round(IOI/tau)| over those IOIs; the smallest. None with fewer than
    `top_k` IOIs or fewer than two distinct ones."""
    iois = np.diff(np.unique(onsets))
    if len(iois) < top_k:
        return None
    counts = Counter(np.round(iois, RGC_DIGITS).tolist())  # ties keep first-seen order, as Etude's
    if len(counts) < 2:
        return None
    common = np.array([ioi for ioi, _ in counts.most_common(top_k)])
    best = None
    for tau in common:
        if tau < RGC_MIN_TAU:
            continue
        ratios = common / tau
        deviation = float(np.mean(np.abs(ratios - np.round(ratios))))
        if best is None or deviation < best:
            best = deviation
    return best


def ioi_pattern_entropy(onsets: np.ndarray, n_gram: int = IPE_N_GRAM, clusters: int = IPE_CLUSTERS) -> float | None:
    """IPE of onset times `onsets` (n,), bits: IOIs clipped to IPE_IOI_RANGE, their logs clustered
    by k-means (k = min(`clusters`, distinct values), seeded as Etude seeds it), then the entropy
    of the `n_gram`-grams of cluster labels. None when fewer than two distinct IOIs; 0.0 when there
    are fewer IOIs than one n-gram."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    onsets = np.unique(onsets)
    if len(onsets) < 2:
        return None
    log_iois = np.log(np.clip(np.diff(onsets), *IPE_IOI_RANGE)).reshape(-1, 1)
    k = min(clusters, len(np.unique(log_iois)))
    if k < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters=k, random_state=42, n_init="auto").fit(log_iois).labels_
    if len(labels) < n_gram:
        return 0.0
    grams = Counter(tuple(labels[i:i + n_gram].tolist()) for i in range(len(labels) - n_gram + 1))
    shares = np.array(list(grams.values()), dtype=float) / sum(grams.values())
    return float(-np.sum(shares * np.log2(shares)))


def warping_path_deviation(cover_times: np.ndarray, original_times: np.ndarray,
                           trim_seconds: float = WPD_TRIM_SECONDS) -> float | None:
    """WPD of an alignment path given as matched times (k,) in the cover and (k,) in the original,
    seconds: fit original = a * cover + b by least squares, return the standard deviation of the
    residuals. The path's first and last `trim_seconds` (of original time) are dropped when more
    than 10 points remain. None with fewer than 10 points."""
    cover_times = np.asarray(cover_times, dtype=float)
    original_times = np.asarray(original_times, dtype=float)
    if len(cover_times) < 10:
        return None
    if trim_seconds > 0 and original_times[-1] > 2 * trim_seconds:
        keep = (original_times >= trim_seconds) & (original_times <= original_times[-1] - trim_seconds)
        if keep.sum() > 10:
            cover_times, original_times = cover_times[keep], original_times[keep]
    # the least-squares line in closed form: np.polyfit's SVD failed to converge once in a bench
    # worker process on a finite path ("SVD did not converge in Linear Least Squares")
    x = cover_times - cover_times.mean()
    y = original_times - original_times.mean()
    spread = float(np.dot(x, x))
    if not np.isfinite(spread) or not np.all(np.isfinite(y)):
        return None
    slope = float(np.dot(x, y)) / spread if spread > 0 else 0.0  # a vertical path: the original's spread
    return float(np.std(y - slope * x))


def chord_pitches(notes: list[Note], window: float = CHORD_WINDOW) -> list[list[int]]:
    """The pitches of each onset group: notes in onset order, a group spanning at most `window`
    seconds from its first onset (as the arranger groups chords)."""
    groups: list[list[int]] = []
    first = -np.inf
    for note in sorted(notes, key=lambda n: (n.start, n.pitch)):
        if groups and note.start - first <= window:
            groups[-1].append(int(note.pitch))
        else:
            groups.append([int(note.pitch)])
            first = note.start
    return groups


def two_hand_playable(pitches: list[int], keys: int = HAND_KEYS, span: int = HAND_SPAN) -> bool:
    """Whether notes struck together can be split, low part to the left hand and high to the right,
    so that each hand has at most `keys` notes within `span` semitones (an empty hand is fine)."""
    ordered = sorted(set(pitches))

    def one_hand(part: list[int]) -> bool:
        return len(part) <= keys and (not part or part[-1] - part[0] <= span)

    return any(one_hand(ordered[:split]) and one_hand(ordered[split:]) for split in range(len(ordered) + 1))


def two_hand_share(groups: list[list[int]], keys: int = HAND_KEYS, span: int = HAND_SPAN) -> float:
    """Share of onset groups (each a list of MIDI pitches struck together) that two hands can strike;
    1.0 when there are none."""
    if not groups:
        return 1.0
    return sum(two_hand_playable(group, keys, span) for group in groups) / len(groups)
