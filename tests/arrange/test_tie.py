"""tie: off-beat re-strikes of a key continue the note; on-beat repeats, other keys and hands stay."""

from __future__ import annotations

import numpy as np

from covermill.models.notes import Note
from covermill.tasks.arrange.registry import StepContext
from covermill.tasks.arrange.styles import arrange_piece
from covermill.tasks.arrange.tie import TieParams, restruck_on_purpose, tie
from covermill.tasks.core.music import LEFT, RIGHT, BeatGrid, Piece

# 120 BPM, sixteenths: a beat is 0.5 s, a grid step 0.125 s
GRID = BeatGrid(beats=tuple(np.arange(9) * 0.5), steps_per_beat=4)


def sixteenths(pitch: int, first: int, count: int, hand: str = "") -> list[Note]:
    """`count` one-step notes of `pitch` from grid step `first` on, each ending as the next starts."""
    return [Note((first + i) * 0.125, (first + i + 1) * 0.125, pitch, 70, hand) for i in range(count)]


def run(notes: list[Note], **params) -> list[Note]:
    return tie(Piece(notes=notes, grid=GRID), TieParams(**params), StepContext()).notes


def test_restrikes_are_held_until_the_next_beat():
    out = run(sixteenths(60, 0, 8))  # two beats of sixteenths on one key
    assert [(n.start, n.end) for n in out] == [(0.0, 0.5), (0.5, 1.0)]


def test_keep_half_restrikes_on_the_half_beat_too():
    out = run(sixteenths(60, 0, 4), keep="half")
    assert [(n.start, n.end) for n in out] == [(0.0, 0.25), (0.25, 0.5)]


def test_keep_none_holds_across_beats_up_to_max_beats():
    out = run(sixteenths(60, 0, 16), keep="none", max_beats=2.0)
    assert [(n.start, n.end) for n in out] == [(0.0, 1.0), (1.0, 2.0)]


def test_other_keys_and_a_gap_longer_than_gap_steps_stay_apart():
    notes = [Note(0.0, 0.125, 60, 70), Note(0.125, 0.25, 62, 70),  # another key: untouched
             Note(0.375, 0.5, 60, 70)]  # two steps after the first 60 ended: gap 1 keeps it, gap 2 joins it
    assert run(notes) == notes
    assert [(n.start, n.end, n.pitch) for n in run(notes, gap=2.0)] == [(0.0, 0.5, 60), (0.125, 0.25, 62)]


def test_the_two_hands_keep_their_own_strikes():
    notes = [Note(0.0, 0.125, 60, 70, RIGHT), Note(0.125, 0.25, 60, 70, LEFT)]
    assert run(notes) == notes


def test_on_purpose_positions():
    positions = np.array([0.0, 0.25, 0.5, 1.0, 1.75])
    assert restruck_on_purpose(positions, "beat").tolist() == [True, False, False, True, False]
    assert restruck_on_purpose(positions, "half").tolist() == [True, False, True, True, False]
    assert restruck_on_purpose(positions, "none").tolist() == [False] * 5


def test_a_style_names_it_after_quantise():
    played = [Note(i * 0.13, i * 0.13 + 0.1, 60, 70) for i in range(8)]  # re-strikes a little off the grid
    piece = arrange_piece(played, [{"step": "quantise"}, {"step": "tie"}], analysis=None)
    assert len(piece.notes) < len(played)
    assert all(n.pitch == 60 for n in piece.notes)
