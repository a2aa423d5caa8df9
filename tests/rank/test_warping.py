"""The DTW path WPD is measured on: hand-checked small cost matrices, then chroma that is the same
song, the same song transposed, and the same song with its first half played at half speed."""

from __future__ import annotations

import numpy as np
import pytest

from covermill.tasks.rank.fluency import warping_path_deviation
from covermill.tasks.rank.warping import alignment_deviation, cosine_distances, dtw_path


def test_a_zero_diagonal_is_the_path():
    cost = np.ones((3, 3)) - np.eye(3)
    assert dtw_path(cost).tolist() == [[0, 0], [1, 1], [2, 2]]


def test_the_path_takes_the_cheap_detour():
    # accumulated: [[0, 0, 9], [9, 9, 0], [18, 18, 0]] -> back from (2,2): up, diagonal, left
    cost = np.array([[0, 0, 9], [9, 9, 0], [9, 9, 0]], dtype=float)
    assert dtw_path(cost).tolist() == [[0, 0], [0, 1], [1, 2], [2, 2]]


def test_a_path_always_spans_both_sequences():
    path = dtw_path(np.random.default_rng(0).random((7, 4)))
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == [6, 3]
    assert np.all(np.diff(path, axis=0) >= 0) and np.all(np.diff(path, axis=0).sum(axis=1) >= 1)


def test_cosine_distance_of_silence_is_one():
    d = cosine_distances(np.array([[1, 0, 0] + [0] * 9, [0] * 12], float), np.array([[2, 0, 0] + [0] * 9], float))
    assert d[:, 0].tolist() == pytest.approx([0.0, 1.0])


def song(frames: int, seed: int = 1) -> np.ndarray:
    """A chromagram (frames, 12) that changes a little every frame, as music does: noise smoothed
    over 5 frames (neighbours alike, frames further apart unrelated), made positive."""
    rng = np.random.default_rng(seed)
    kernel = np.ones(5) / 5
    noise = rng.normal(size=(frames + 4, 12))
    smooth = np.stack([np.convolve(noise[:, b], kernel, mode="valid") for b in range(12)], axis=1)
    return np.exp(2 * smooth).astype(np.float32)


def test_wpd_is_zero_for_the_same_song_even_transposed():
    original = song(400)  # 20 s at 0.05 s a frame
    assert alignment_deviation(original, original, 0.05) == pytest.approx(0.0, abs=1e-9)
    assert alignment_deviation(np.roll(original, 3, axis=1), original, 0.05) == pytest.approx(0.0, abs=1e-9)


def test_a_cover_that_drags_then_catches_up_deviates():
    original = song(800)  # 40 s
    half = len(original) // 2
    dragging = np.concatenate([np.repeat(original[:half], 2, axis=0), original[half:]])  # first half at half speed
    steady = np.repeat(original, 2, axis=0)  # all of it at half speed: a straight path again
    assert alignment_deviation(steady, original, 0.05) < 0.05
    # the path the drag makes: original = cover / 2 for the first 40 s of cover, then cover - 20;
    # one point per cover frame where the original's frames are doubled, one per frame after
    cover_s = np.concatenate([np.arange(800) * 0.05, 40 + np.arange(400) * 0.05])
    ideal = warping_path_deviation(cover_s, np.where(cover_s < 40, cover_s / 2, cover_s - 20))
    assert ideal > 0.8
    assert alignment_deviation(dragging, original, 0.05) == pytest.approx(ideal, abs=0.05)


def test_silence_or_too_little_measures_nothing():
    original = song(100)
    assert alignment_deviation(np.zeros_like(original), original, 0.05) is None
    assert alignment_deviation(original[:5], original, 0.05) is None
