"""Etude's fluency measures and the two-hand check, on tiny inputs whose answers are worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from covermill.models.notes import Note
from covermill.tasks.rank.fluency import (
    ioi_pattern_entropy,
    rhythmic_grid_consistency,
    two_hand_playable,
    two_hand_share,
    unique_onsets,
    warping_path_deviation,
)


def onsets_from(iois: list[float]) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(iois)])


class TestRhythmicGridConsistency:
    def test_onsets_on_one_grid_score_zero(self):
        assert rhythmic_grid_consistency(onsets_from([0.25, 0.5, 0.25, 0.25, 0.75, 0.5, 0.25, 0.25, 1.0])) == 0.0

    def test_two_intervals_that_share_no_grid(self):
        # common IOIs 0.3 and 0.5: tau 0.3 leaves |5/3 - 2| = 1/3 on one of two -> 1/6; tau 0.5 leaves 0.4 -> 0.2
        assert rhythmic_grid_consistency(onsets_from([0.3, 0.5] * 5)) == pytest.approx(1 / 6)

    def test_too_few_onsets_or_one_interval_measure_nothing(self):
        assert rhythmic_grid_consistency(onsets_from([0.3, 0.5] * 3)) is None  # 6 IOIs < 8
        assert rhythmic_grid_consistency(onsets_from([0.5] * 12)) is None  # one distinct IOI

    def test_a_grid_finer_than_10_ms_is_not_a_candidate(self):
        # 5 ms and 0.505 s: tau 0.005 is skipped, tau 0.505 leaves 0.005/0.505 ~ 0.0099 on half of them
        assert rhythmic_grid_consistency(onsets_from([0.005, 0.505] * 5)) == pytest.approx((0.005 / 0.505) / 2)


class TestIoiPatternEntropy:
    def test_an_alternating_rhythm_has_one_bit(self):
        # 17 IOIs short-long-short...: ten 8-grams, five starting short and five long
        assert ioi_pattern_entropy(onsets_from([0.25, 0.5] * 8 + [0.25])) == pytest.approx(1.0)

    def test_a_rhythm_that_never_repeats_has_the_most(self):
        # 16 clusters from 16 distinct IOIs, each 8-gram unique: log2(9) bits for 9 grams
        iois = list(np.geomspace(0.07, 3.5, 16))
        assert ioi_pattern_entropy(onsets_from(iois)) == pytest.approx(np.log2(9))

    def test_a_metronome_or_a_short_phrase(self):
        assert ioi_pattern_entropy(onsets_from([0.5] * 20)) is None  # one interval: nothing to cluster
        assert ioi_pattern_entropy(onsets_from([0.25, 0.5, 0.25])) == 0.0  # no whole 8-gram
        assert ioi_pattern_entropy(np.array([1.0])) is None

    def test_intervals_are_clipped_before_clustering(self):
        # 8 s and 5 s gaps both become 4 s: one cluster with the 4 s ones, so an alternating rhythm again
        assert ioi_pattern_entropy(onsets_from([0.25, 8.0, 0.25, 5.0] * 4 + [0.25])) == pytest.approx(1.0)


class TestWarpingPathDeviation:
    def test_a_straight_path_at_any_tempo_deviates_nowhere(self):
        cover = np.arange(30.0)
        assert warping_path_deviation(cover, 1.25 * cover + 3.0, trim_seconds=0) == pytest.approx(0.0, abs=1e-12)

    def test_a_wobble_orthogonal_to_the_line_is_its_own_deviation(self):
        # +d -d -d +d sums to zero and is orthogonal to t, so the fitted line is the diagonal
        cover = np.arange(20.0)
        wobble = np.tile([0.3, -0.3, -0.3, 0.3], 5)
        assert warping_path_deviation(cover, cover + wobble, trim_seconds=0) == pytest.approx(0.3)

    def test_the_first_and_last_seconds_are_left_out(self):
        cover = np.arange(40.0)
        original = cover + np.where(cover < 5, 2.0, 0.0)  # a stumble in the first seconds (original time < 10)
        assert warping_path_deviation(cover, original) == pytest.approx(0.0, abs=1e-12)
        assert warping_path_deviation(cover, original, trim_seconds=0) > 0.3

    def test_too_short_a_path(self):
        assert warping_path_deviation(np.arange(9.0), np.arange(9.0)) is None

    def test_a_vertical_path_deviates_by_the_spread_of_the_original(self):
        # one cover frame matched to the whole original: no line through it, the deviation is std(0..19)
        original = np.arange(20.0)
        assert warping_path_deviation(np.full(20, 5.0), original, trim_seconds=0) == pytest.approx(np.std(original))


class TestTwoHands:
    @pytest.mark.parametrize(("pitches", "playable"), [
        ([], True),
        ([36, 48, 60, 64, 67, 72], True),  # left C2 C3, right C4 E4 G4 C5: an octave each
        ([60, 61, 62, 63, 64, 65], True),  # six keys: one in the left, five in the right
        ([48, 50, 52, 55, 57, 60, 62, 64, 65, 67], True),  # ten: five per hand, spans 9 and 7
        ([48, 50, 52, 55, 57, 60, 62, 64, 65, 67, 69], False),  # eleven keys
        ([36, 60, 84], False),  # three octaves apart: one hand would span two octaves
        ([40, 55, 70], False),  # 15 semitones apart each: one pair per hand is too wide
        ([40, 54, 70], True),  # 14 semitones: a left hand reaches it
    ])
    def test_a_chord_splits_low_to_left_and_high_to_right(self, pitches, playable):
        assert two_hand_playable(pitches) is playable

    def test_the_share_counts_groups(self):
        assert two_hand_share([[36, 60, 84], [60, 64], [48], [36, 60, 84]]) == 0.5
        assert two_hand_share([]) == 1.0


def test_unique_onsets_are_sorted_and_distinct():
    notes = [Note(1.0, 2.0, 60, 80), Note(0.5, 1.0, 64, 80), Note(1.0, 1.5, 67, 80)]
    assert unique_onsets(notes).tolist() == [0.5, 1.0]
