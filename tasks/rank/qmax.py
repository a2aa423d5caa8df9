"""Qmax, the cover-song distance the AMT-APC paper scores piano covers with (lower is closer).

One code path, its parameters in one frozen record (`PROTOCOL`): notes under 0.08 s dropped
before rendering (cover/render.py does that), HPCP chroma as ChromaCoverId computes it (the code the
AMT-APC evaluation uses), a binary cross-recurrence plot (essentia's ChromaCrossSimilarity, OTI
transposition) and Serra 2009 local alignment (essentia's CoverSongSimilarity), the last two
computed by cross_recurrence.py, which equals essentia bit for bit at a tenth of the time (but for
a stack count n with n - 1 a multiple of 200, where essentia's percentile is 0 and its plot empty).

Qmax = sqrt(N) / S, where S is the best alignment score and N the cover's frame count in the
cross-recurrence plot: the original is essentia's "query" and the cover its "reference", which
is the orientation of AMT-APC's `qmax_measure(cross_recurrent_plot(original, cover))`, so the
cover is transposed to the original's key and the distance is normalised by the cover's length.
1 / (Qmax * sqrt(N)) = S / N is then the share of the cover's frames in the best alignment.

Memory and time grow with the product of the two frame counts (two 10-minute songs at the
native 2048-sample hop: 99 s and 9.2 GB), so frames are pooled: the factor comes from the
original's frame count and `max_frames`, and every candidate of that song is pooled by the same
factor so their Qmax values stay comparable with each other. The ranker also aligns the same pooled
chroma over the whole song for WPD (tasks/rank/warping.py), in the same job (compare_and_align_all).
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from covermill.models.audio import essentia_standard
from covermill.tasks.core.audio import SAMPLE_RATE, read_mono

# essentia (0.5 s to import) and the numba modules (cross_recurrence, warping: 0.16 s) are imported at
# their first use: every covermill command paid them before its first stage, and a finished song's
# re-run never computes a chroma.


@dataclass(frozen=True)
class QmaxProtocol:
    min_note_seconds: float = 0.08  # notes shorter than this are dropped before rendering
    sample_rate: int = SAMPLE_RATE
    # HPCP, ChromaCoverId's chroma_hpcp recipe (frequency range as essentia's hpcpgram and its
    # cover-song tutorial use)
    frame_size: int = 4096
    hop_size: int = 2048
    window: str = "blackmanharris62"
    magnitude_threshold: float = 1e-5
    max_peaks: int = 1000
    min_frequency: float = 100.0
    max_frequency: float = 4000.0
    whitening: bool = True
    bins: int = 12
    harmonics: int = 8
    reference_frequency: float = 440.0
    non_linear: bool = False
    # cross-recurrence plot
    frame_stack_size: int = 9
    frame_stack_stride: int = 1
    binarize_percentile: float = 0.095
    oti: bool = True
    # alignment
    alignment: str = "serra09"
    dis_onset: float = 0.5
    dis_extension: float = 0.5
    distance_type: str = "asymmetric"

    @property
    def stacked_frames(self) -> int:
        """Frames one stacked feature spans; a shorter chromagram has nothing to compare."""
        return (self.frame_stack_size - 1) * self.frame_stack_stride + 1


PROTOCOL = QmaxProtocol()


class QmaxResult(NamedTuple):
    qmax: float  # inf when nothing aligns
    frames: int  # N: the cover's frames in the cross-recurrence plot (after pooling and stacking)
    aligned_share: float  # S / N, 0 when nothing aligns


NOTHING_ALIGNS = QmaxResult(qmax=math.inf, frames=0, aligned_share=0.0)


def hpcp(samples: np.ndarray, protocol: QmaxProtocol = PROTOCOL) -> np.ndarray:
    """(frames, 12) float32 chromagram of mono samples at the protocol's rate; silent frames are zeros."""
    p = protocol
    es = essentia_standard()
    window = es.Windowing(type=p.window)
    spectrum = es.Spectrum()
    peaks = es.SpectralPeaks(
        magnitudeThreshold=p.magnitude_threshold, minFrequency=p.min_frequency, maxFrequency=p.max_frequency,
        maxPeaks=p.max_peaks, orderBy="frequency", sampleRate=p.sample_rate,
    )
    whitening = es.SpectralWhitening(maxFrequency=p.max_frequency, sampleRate=p.sample_rate)
    chroma = es.HPCP(
        size=p.bins, harmonics=p.harmonics, minFrequency=p.min_frequency, maxFrequency=p.max_frequency,
        referenceFrequency=p.reference_frequency, nonLinear=p.non_linear, sampleRate=p.sample_rate,
    )
    frames = []
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    for frame in es.FrameGenerator(samples, frameSize=p.frame_size, hopSize=p.hop_size):
        magnitudes = spectrum(window(frame))
        frequencies, peak_magnitudes = peaks(magnitudes)
        if p.whitening:
            peak_magnitudes = whitening(magnitudes, frequencies, peak_magnitudes)
        frames.append(chroma(frequencies, peak_magnitudes))
    if not frames:
        return np.zeros((0, p.bins), dtype=np.float32)
    return np.asarray(frames, dtype=np.float32)


def pool_factor(frames: int, max_frames: int) -> int:
    """The smallest whole factor that brings `frames` down to `max_frames` or fewer."""
    if max_frames < 1:
        raise ValueError("max_frames must be at least 1")
    return max(1, math.ceil(frames / max_frames))


def pool_frames(features: np.ndarray, factor: int) -> np.ndarray:
    """Average each run of `factor` consecutive frames (the last run may be shorter), then scale
    each frame to a maximum of 1 again, as HPCP frames are; all-zero frames stay zero."""
    features = np.asarray(features, dtype=np.float32)
    if factor <= 1 or len(features) == 0:
        return np.ascontiguousarray(features)
    starts = np.arange(0, len(features), factor)
    sums = np.add.reduceat(features, starts, axis=0)
    counts = np.diff(np.append(starts, len(features)))[:, None]
    pooled = sums / counts
    peak = pooled.max(axis=1, keepdims=True)
    return np.ascontiguousarray(np.divide(pooled, peak, out=np.zeros_like(pooled), where=peak > 0), dtype=np.float32)


def _silent(features: np.ndarray, protocol: QmaxProtocol) -> bool:
    """Too few frames with any chroma to stack into one feature: there is nothing to align."""
    return int(np.count_nonzero(features.max(axis=1) > 0)) < protocol.stacked_frames if len(features) else True


def qmax(cover: np.ndarray, original: np.ndarray, protocol: QmaxProtocol = PROTOCOL) -> QmaxResult:
    """Qmax of a cover's chromagram against the original's (both pooled by the same factor)."""
    p = protocol
    if len(cover) < p.stacked_frames + 1 or len(original) < p.stacked_frames + 1 or _silent(cover, p) or _silent(original, p):
        return NOTHING_ALIGNS
    from covermill.tasks.rank.cross_recurrence import best_alignment, cross_recurrence

    plot = None
    if p.alignment == "serra09" and p.distance_type == "asymmetric":  # what the fast path implements
        plot = cross_recurrence(
            original, cover, binarize_percentile=p.binarize_percentile,
            frame_stack_size=p.frame_stack_size, frame_stack_stride=p.frame_stack_stride, oti=p.oti,
        )
    if plot is None:
        best, frames = _essentia_alignment(cover, original, p)
    else:
        best, frames = best_alignment(plot, p.dis_onset, p.dis_extension), int(plot.shape[1])
    if best <= 0 or frames == 0:
        return QmaxResult(qmax=math.inf, frames=frames, aligned_share=0.0)
    # sqrt(N) / S as essentia's asymmetric distance, recomputed here in float64 so that
    # aligned_share is exactly S / N
    return QmaxResult(qmax=math.sqrt(frames) / best, frames=frames, aligned_share=best / frames)


def _essentia_alignment(cover: np.ndarray, original: np.ndarray, p: QmaxProtocol) -> tuple[float, int]:
    """(best alignment score, cover frames) by essentia itself: the reference the fast path equals."""
    es = essentia_standard()
    similarity = es.ChromaCrossSimilarity(
        frameStackSize=p.frame_stack_size, frameStackStride=p.frame_stack_stride,
        binarizePercentile=p.binarize_percentile, oti=p.oti,
    )
    alignment = es.CoverSongSimilarity(
        alignmentType=p.alignment, disOnset=p.dis_onset, disExtension=p.dis_extension, distanceType=p.distance_type,
    )
    plot = similarity(np.ascontiguousarray(original), np.ascontiguousarray(cover))
    scores, _ = alignment(plot)
    return float(np.max(scores)), int(np.shape(plot)[1])


def chroma_frames(sample_count: int, protocol: QmaxProtocol = PROTOCOL) -> int:
    """How many frames hpcp() makes of this many samples (essentia's FrameGenerator centres frames
    on multiples of the hop and adds one past the end), known before any chroma is computed."""
    return 0 if sample_count <= 0 else math.ceil(sample_count / protocol.hop_size) + 1


class OriginalChroma:
    """The original's chromagram, computed and pooled once per song, compared with every candidate."""

    def __init__(self, samples: np.ndarray, max_frames: int, protocol: QmaxProtocol = PROTOCOL):
        self.protocol = protocol
        native = hpcp(samples, protocol)
        self.native_frames = len(native)
        self.factor = pool_factor(chroma_frames(len(samples), protocol), max_frames)
        self.features = pool_frames(native, self.factor)

    @classmethod
    def from_file(cls, path: Path, max_frames: int, protocol: QmaxProtocol = PROTOCOL) -> OriginalChroma:
        return cls(read_mono(path, protocol.sample_rate), max_frames, protocol)

    def cover_features(self, samples: np.ndarray) -> np.ndarray:
        """A cover's chromagram pooled by the original's factor."""
        return pool_frames(hpcp(samples, self.protocol), self.factor)

    def compare(self, cover_samples: np.ndarray) -> QmaxResult:
        return qmax(self.cover_features(cover_samples), self.features, self.protocol)

    def compare_file(self, cover_audio: Path) -> QmaxResult:
        return self.compare(read_mono(cover_audio, self.protocol.sample_rate))


def cover_chroma(cover_audio: Path, factor: int, protocol: QmaxProtocol = PROTOCOL) -> np.ndarray:
    """A cover's chromagram from its audio file, pooled by the original's factor."""
    return pool_frames(hpcp(read_mono(cover_audio, protocol.sample_rate), protocol), factor)


class ChromaMeasures(NamedTuple):
    """What one cover's pooled chroma gives against the original's, in one worker job."""

    result: QmaxResult
    wpd: float | None  # warping-path deviation, s (tasks/rank/warping.py); None when silent or too short


def frame_seconds(factor: int, protocol: QmaxProtocol = PROTOCOL) -> float:
    """Seconds one chroma frame pooled by `factor` spans (46 ms at the native hop)."""
    return protocol.hop_size * factor / protocol.sample_rate


def qmax_and_wpd(cover: np.ndarray, original: np.ndarray, factor: int, protocol: QmaxProtocol = PROTOCOL) -> ChromaMeasures:
    """Qmax and WPD of a cover's chroma against the original's, both pooled by `factor`: WPD's DTW
    path runs on the chroma Qmax already has (0.005-0.05 s a candidate beside Qmax's 0.02-0.08 s
    at 60 s to 4 minutes, measured on planetblupi's music004)."""
    from covermill.tasks.rank.warping import alignment_deviation

    return ChromaMeasures(qmax(cover, original, protocol), alignment_deviation(cover, original, frame_seconds(factor, protocol)))


def _qmax_only(cover: np.ndarray, original: np.ndarray, factor: int, protocol: QmaxProtocol) -> QmaxResult:
    return qmax(cover, original, protocol)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """Processes, not threads: essentia holds the GIL. Spawn, not fork: the parent runs Prefect's
    threads, which a forked child must not inherit."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def compare_all(original_samples: np.ndarray, cover_audio: list[Path], max_frames: int, workers: int = 1,
                protocol: QmaxProtocol = PROTOCOL) -> tuple[OriginalChroma, list[QmaxResult]]:
    """Qmax of every cover against the original, in order.

    With several workers the covers' chroma starts at once in other processes (the pooling factor
    is known from the original's length alone) while this process computes the original's, and
    then the alignments are spread too.
    """
    return _compare(original_samples, cover_audio, max_frames, workers, protocol, _qmax_only)


def compare_and_align_all(original_samples: np.ndarray, cover_audio: list[Path], max_frames: int, workers: int = 1,
                          protocol: QmaxProtocol = PROTOCOL, pool: Executor | None = None,
                          ) -> tuple[OriginalChroma, list[ChromaMeasures]]:
    """compare_all's Qmax of every cover, each with its WPD from the same chroma in the same job.
    `pool` lends a running process pool (the ranker measures the candidates' notes in it too)."""
    return _compare(original_samples, cover_audio, max_frames, workers, protocol, qmax_and_wpd, pool)


def _compare(original_samples: np.ndarray, cover_audio: list[Path], max_frames: int, workers: int,
             protocol: QmaxProtocol, job: Callable[..., Any], pool: Executor | None = None) -> tuple[OriginalChroma, list]:
    """`job(cover chroma, original chroma, factor, protocol)` for every cover, in order: here, in
    `pool`, or in a pool of `workers` processes of its own."""
    if pool is None and (workers <= 1 or len(cover_audio) <= 1):
        original = OriginalChroma(original_samples, max_frames, protocol)
        return original, [
            job(original.cover_features(read_mono(path, protocol.sample_rate)), original.features, original.factor, protocol)
            for path in cover_audio
        ]
    if pool is None:
        with worker_pool(min(workers, len(cover_audio))) as own:
            return _compare_in(own, original_samples, cover_audio, max_frames, protocol, job)
    return _compare_in(pool, original_samples, cover_audio, max_frames, protocol, job)


def _compare_in(pool: Executor, original_samples: np.ndarray, cover_audio: list[Path], max_frames: int,
                protocol: QmaxProtocol, job: Callable[..., Any]) -> tuple[OriginalChroma, list]:
    factor = pool_factor(chroma_frames(len(original_samples), protocol), max_frames)
    covers = [pool.submit(cover_chroma, path, factor, protocol) for path in cover_audio]
    original = OriginalChroma(original_samples, max_frames, protocol)
    aligned = [pool.submit(job, cover.result(), original.features, factor, protocol) for cover in covers]
    return original, [result.result() for result in aligned]
