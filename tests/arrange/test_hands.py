"""hands: small chords split by hand, then a dense real arrangement made playable by two hands at every instant."""

from __future__ import annotations

import pytest

from covermill.models.notes import Note, onset_groups
from covermill.tasks.arrange.hands import HandsParams, hands, reachable, split_chord
from covermill.tasks.arrange.registry import StepContext
from covermill.tasks.arrange.steps import FoldParams, fold
from covermill.tasks.core.midi import read_midi
from covermill.tasks.core.music import LEFT, RIGHT, Piece
from covermill.tasks.rank.fluency import HAND_KEYS, HAND_SPAN


def run(notes: list[Note], **params) -> list[Note]:
    return hands(Piece(notes=notes), HandsParams(**params), StepContext()).notes


def by_hand(notes: list[Note], hand: str) -> list[int]:
    return sorted(n.pitch for n in notes if n.hand == hand)


def test_a_wide_chord_splits_between_the_hands():
    chord = [Note(0, 1, p, 80) for p in (36, 48, 60, 64, 67, 72)]
    out = run(chord)
    assert by_hand(out, LEFT) == [36, 48] and by_hand(out, RIGHT) == [60, 64, 67, 72]


def test_a_hand_keeps_its_anchor_and_the_loudest_within_reach():
    loud = {60: 50, 62: 90, 64: 40, 65: 95, 67: 60, 69: 30, 72: 70, 90: 100}
    # the right hand's anchor is the top (90); nothing else lies within 14 semitones of it...
    assert reachable(sorted(loud), 5, 14, anchor_top=True, loudness=loud, fold=False) == {90: 90}
    # ...so the loudest move up by octaves into its reach, keeping their pitch classes (60's 84 is 72's already)
    assert reachable(sorted(loud), 5, 14, anchor_top=True, loudness=loud) == {90: 90, 65: 77, 62: 86, 72: 84, 67: 79}
    del loud[90]
    assert reachable(sorted(loud), 5, 14, anchor_top=True, loudness=loud) == {72: 72, 65: 65, 62: 62, 67: 67, 60: 60}  # 64, 69 softest
    assert reachable([40, 41, 60], 5, 14, anchor_top=False, loudness={40: 1, 41: 1, 60: 1}) == {40: 40, 41: 41, 60: 48}


def test_a_melody_note_never_goes_to_the_left_hand():
    loudness = {50: 80, 52: 80, 55: 80}
    left, right = split_chord([50, 52, 55], {55}, 50.0, 50.0, loudness, HandsParams())
    assert 55 in right
    # 40 is beyond the right hand's reach from 55, so the left hand takes it, and only it
    left, right = split_chord([40, 52, 55], {52}, 40.0, 80.0, {40: 80, 52: 80, 55: 80}, HandsParams())
    assert (left, right) == ({40: 40}, {55: 55, 52: 52})


def test_a_line_around_middle_c_stays_in_one_hand():
    line = [Note(i * 0.5, i * 0.5 + 0.4, p, 80) for i, p in enumerate([60, 62, 64, 65, 67, 65, 64, 62, 60])]
    assert {n.hand for n in run(line)} == {RIGHT}
    bass = [Note(i * 0.5, i * 0.5 + 0.4, p, 80) for i, p in enumerate([36, 38, 40, 41, 43])]
    assert {n.hand for n in run(bass)} == {LEFT}


def test_eleven_keys_at_once_lose_what_no_hand_reaches():
    cluster = [Note(0, 1, p, 80) for p in (36, 40, 43, 48, 52, 55, 60, 64, 67, 72, 76)]
    out = run(cluster)
    assert len(by_hand(out, LEFT)) <= 5 and len(by_hand(out, RIGHT)) <= 5
    assert 36 in by_hand(out, LEFT) and 76 in by_hand(out, RIGHT)  # the bass and the top survive
    assert all(n.hand in (LEFT, RIGHT) for n in out)


@pytest.fixture(scope="module")
def band(reference_midis) -> list[Note]:
    """40 s of a four-instrument score: up to 11 notes at once, folded onto the keyboard."""
    return fold([n for n in read_midi(reference_midis["song_b"]) if n.start < 40.0], FoldParams())


def test_a_dense_arrangement_becomes_playable_at_every_instant(band):
    out = run(band)
    assert out and all(n.hand in (LEFT, RIGHT) for n in out)
    kept = len(out) / len(band)
    assert kept > 0.9  # most of the music survives (measured: 0.97 of song_b's notes; 0.88 before octave folding)
    for group in onset_groups(out):
        t = group[0].start
        for hand in (LEFT, RIGHT):
            down = sorted(n.pitch for n in out if n.hand == hand and n.start <= t < n.end)
            assert len(down) <= HAND_KEYS and (not down or down[-1] - down[0] <= HAND_SPAN), (t, hand, down)
        left = [n.pitch for n in group if n.hand == LEFT]
        right = [n.pitch for n in group if n.hand == RIGHT]
        assert not left or not right or max(left) < min(right)  # the hands never cross within a chord
