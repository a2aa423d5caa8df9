"""The fast cross-recurrence plot and alignment equal essentia's, bit for bit, on real recordings."""

from __future__ import annotations

import math

import essentia.standard as es
import numpy as np
import pytest

from covermill.models.notes import Note
from covermill.tasks.core.audio import decode_to_wav, read_mono
from covermill.tasks.core.midi import read_midi
from covermill.tasks.cover.render import RenderSettings, render_notes
from covermill.tasks.rank.cross_recurrence import _percentile_k, _row_thresholds, best_alignment, cross_recurrence
from covermill.tasks.rank.qmax import PROTOCOL, _essentia_alignment, hpcp, pool_frames, qmax


@pytest.fixture(scope="module")
def chroma(clips, reference_midis, tmp_path_factory) -> dict[str, np.ndarray]:
    folder = tmp_path_factory.mktemp("crp")
    out = {name: hpcp(read_mono(decode_to_wav(clips[name], folder / f"{name}.wav"))) for name in ("song_a", "song_b", "song_c")}
    score = [Note(n.start - 20.0, min(n.end, 45.0) - 20.0, n.pitch, n.velocity)
             for n in read_midi(reference_midis["song_a"]) if 20.0 <= n.start < 44.9]
    out["song_a score"] = hpcp(render_notes(score, RenderSettings(), PROTOCOL.min_note_seconds))
    return out


def essentia_plot(original: np.ndarray, cover: np.ndarray) -> np.ndarray:
    return np.asarray(es.ChromaCrossSimilarity(frameStackSize=9, frameStackStride=1, binarizePercentile=0.095, oti=True)(
        np.ascontiguousarray(original), np.ascontiguousarray(cover)), dtype=np.float32)


PAIRS = [("song_a", "song_a score", 1), ("song_a", "song_b", 1), ("song_b", "song_c", 1), ("song_c", "song_a score", 1),
         ("song_a", "song_a score", 3), ("song_b", "song_a", 2)]


@pytest.mark.parametrize("original,cover,factor", PAIRS)
def test_plot_and_alignment_equal_essentias(chroma, original, cover, factor):
    a, b = pool_frames(chroma[original], factor), pool_frames(chroma[cover], factor)
    expected = essentia_plot(a, b)
    plot = cross_recurrence(a, b)
    assert plot is not None and plot.shape == expected.shape
    assert np.array_equal(plot, expected)
    scores, _ = es.CoverSongSimilarity(alignmentType="serra09", disOnset=0.5, disExtension=0.5, distanceType="asymmetric")(expected)
    assert best_alignment(plot) == float(np.max(scores))
    assert qmax(b, a) == qmax(b, a, PROTOCOL) and _essentia_alignment(b, a, PROTOCOL) == (float(np.max(scores)), plot.shape[1])


def test_uneven_lengths_and_both_orientations(chroma):
    short = chroma["song_b"][:200]
    for original, cover in ((chroma["song_a"], short), (short, chroma["song_a"])):
        assert np.array_equal(cross_recurrence(original, cover), essentia_plot(original, cover))


def test_a_nan_distance_is_left_to_essentia(chroma):
    """Nearly identical frames can round a distance to NaN: qmax() then asks essentia, and agrees with it."""
    song = chroma["song_a"]
    assert np.array_equal(cross_recurrence(song, song), essentia_plot(song, song))
    nearly = (song + np.random.default_rng(0).uniform(0, 1e-6, song.shape)).astype(np.float32)
    assert cross_recurrence(song, nearly) is None
    best, frames = _essentia_alignment(nearly, song, PROTOCOL)
    result = qmax(nearly, song)
    assert result.frames == frames and result.aligned_share == pytest.approx(best / frames)


def test_an_integral_percentile_index_is_that_order_statistic_not_zero():
    """201 distances: k = 200 * 0.095 = 19 exactly, where essentia's weights are 0 and 0 (threshold 0,
    an empty plot, Qmax infinite: a 168 s song pooled to 1801 stacks lost every candidate)."""
    assert _percentile_k(201, 0.095) == (19, 19, 1.0, 0.0)
    line = np.random.default_rng(0).permutation(np.arange(1, 202, dtype=np.float32))[None, :]  # 1..201
    assert _row_thresholds(line, *_percentile_k(201, 0.095))[0] == 20.0  # sorted[19]
    lo, hi, w_lo, w_hi = _percentile_k(202, 0.095)  # k = 19.095: interpolated as before
    assert (lo, hi) == (19, 20) and w_lo + w_hi == pytest.approx(1.0)


def test_a_cover_of_201_stacks_still_aligns():
    rng = np.random.default_rng(1)
    original = rng.random((210, 12)).astype(np.float32)  # 210 - 9 = 201 stacks either way
    cover = np.clip(original + rng.normal(0, 0.05, original.shape), 0, 1).astype(np.float32)
    plot = cross_recurrence(original, cover)
    assert plot.shape == (201, 201) and plot.sum() > 0
    result = qmax(cover, original)
    assert math.isfinite(result.qmax) and result.aligned_share > 0.5
