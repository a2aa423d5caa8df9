"""pedal: up at each harmony change, down just after; a fresh pedal on long harmonies; none in silence."""

from __future__ import annotations

import numpy as np
import pytest

from covermill.models.notes import Note
from covermill.tasks.arrange.pedal import PedalParams, pedal
from covermill.tasks.arrange.registry import StepContext
from covermill.tasks.core.music import BeatGrid, Piece


def chord(pitches: list[int], start: float, end: float) -> list[Note]:
    return [Note(start, end, p, 80) for p in pitches]


def flat(intervals) -> list[float]:
    return np.array(intervals).ravel().tolist()


def approx(intervals):
    return pytest.approx(np.array(intervals).ravel().tolist())


def run(notes: list[Note], grid: BeatGrid | None = None, **params) -> Piece:
    return pedal(Piece(notes=notes, grid=grid), PedalParams(**params), StepContext())


def test_the_pedal_changes_with_the_harmony():
    notes = chord([48, 52, 55], 0, 1) + chord([53, 57, 60], 1, 2) + chord([55, 59, 62], 2, 3)
    out = run(notes)
    assert flat(out.pedal) == approx(((0.0, 1.0), (1.06, 2.0), (2.06, 3.0)))
    assert out.notes == notes  # nothing stretched


def test_the_same_harmony_again_keeps_the_pedal_down():
    notes = chord([48, 52, 55], 0, 1) + chord([60, 64, 67], 1, 2)  # C again, an octave up
    assert flat(run(notes).pedal) == approx(((0.0, 2.0),))


def test_a_long_harmony_gets_a_fresh_pedal_every_max_hold_seconds():
    assert flat(run(chord([48, 52, 55], 0, 10), max_hold=4.0).pedal) == approx(((0.0, 4.0), (4.06, 8.0), (8.06, 10.0)))


def test_silence_is_not_pedalled():
    notes = chord([48, 52, 55], 0, 1) + chord([53, 57, 60], 3, 4)
    assert flat(run(notes).pedal) == approx(((0.0, 1.0), (3.0, 4.0)))


def test_a_passing_chord_between_the_beats_is_no_change():
    grid = BeatGrid(beats=tuple(np.arange(8) * 1.0))
    notes = chord([48, 52, 55], 0, 2) + chord([50, 53, 57], 1.5, 1.75) + chord([53, 57, 60], 2, 3)
    assert flat(run(notes, grid).pedal) == approx(((0.0, 2.0), (2.06, 3.0)))
    assert flat(run(notes).pedal) == approx(((0.0, 1.5), (1.56, 2.0), (2.06, 3.0)))  # without a grid it is one
