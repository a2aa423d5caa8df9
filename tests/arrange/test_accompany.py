"""accompany: chords read from notes (or the audio's chords where notes are sparse), played in patterns."""

from __future__ import annotations

import numpy as np
import pytest

from covermill.models.notes import Note
from covermill.tasks.arrange.accompany import (
    AccompanyParams,
    accompany,
    chord,
    chord_of,
    eighths_in,
    pattern_notes,
    segments,
    voicing,
)
from covermill.tasks.arrange.registry import StepContext
from covermill.tasks.core.music import LEFT, BeatGrid, Piece

GRID = BeatGrid(beats=tuple(np.arange(17) * 0.5), beats_per_bar=4, first_downbeat=0)  # 120 BPM, 4/4, 8 s


def notes_of(pitches: list[int], start: float, end: float, velocity: int = 80) -> list[Note]:
    return [Note(start, end, p, velocity) for p in pitches]


@pytest.mark.parametrize(("pitches", "name"), [
    ([60, 64, 67], "C"), ([57, 60, 64], "Am"), ([55, 59, 62, 65], "G7"), ([64, 67, 72], "C"), ([52, 55, 59], "Em"),
    ([40, 60, 67], "E(0,3,8)"),  # C/E: the bass played is the root the left hand plays
    ([50, 57, 62, 67], "D(0,5,7)"),  # a suspension no template names keeps its own tones
])
def test_the_chord_the_notes_play(pitches, name):
    found, share = chord_of(notes_of(pitches, 0.0, 1.0), 0.0, 1.0)
    assert found.name == name and share == 1.0


def test_faint_notes_are_no_chord_tones():
    notes = notes_of([48, 52, 55], 0.0, 1.0) + [Note(0.0, 0.1, 62, 40)]  # a brief soft D over C major
    assert chord_of(notes, 0.0, 1.0)[0].name == "C"


def test_silence_has_no_chord():
    assert chord_of([], 0.0, 1.0) == (None, 0.0)
    assert chord_of(notes_of([60], 2.0, 3.0), 0.0, 1.0) == (None, 0.0)


def test_the_harmony_is_read_per_half_bar_after_a_pickup():
    grid = BeatGrid(beats=tuple(np.arange(9) * 0.5), beats_per_bar=4, first_downbeat=1)
    found = [(round(a, 2), round(b, 2), len(beats)) for a, b, beats in segments(grid, "half-bar", end=4.0)]
    assert found == [(0.0, 0.5, 1), (0.5, 1.5, 2), (1.5, 2.5, 2), (2.5, 3.5, 2), (3.5, 4.0, 1)]
    assert [len(b) for _, _, b in segments(grid, "bar", end=4.0)] == [1, 4, 3]


EIGHTHS = [0.0, 0.25, 0.5, 0.75]


def test_patterns_play_the_chord_in_the_left_hand():
    assert voicing(chord(0), 36, 55) == (36, [40, 43])  # C2 E2 G2
    assert voicing(chord(9, "m"), 36, 55) == (45, [48, 52])  # A2 C3 E3
    c = chord(0)
    params = AccompanyParams
    block = pattern_notes(c, 0.0, 1.0, [0.0, 0.5], params(pattern="block"), [])
    assert sorted(n.pitch for n in block) == [36, 40, 43] and all(n.end == 1.0 and n.hand == LEFT for n in block)
    broken = pattern_notes(c, 0.0, 1.0, [0.0, 0.5], params(pattern="broken"), [])
    assert [(n.start, n.pitch) for n in sorted(broken)] == [(0.0, 36), (0.5, 40), (0.5, 43)]
    arpeggio = pattern_notes(c, 0.0, 1.0, [0.0, 0.5], params(pattern="arpeggio"), EIGHTHS)
    assert [n.pitch for n in sorted(arpeggio)] == [36, 43, 48, 43]
    alberti = pattern_notes(c, 0.0, 1.0, [0.0, 0.5], params(pattern="alberti"), EIGHTHS)
    assert [n.pitch for n in sorted(alberti)] == [36, 43, 40, 43]
    assert [(n.start, n.end) for n in sorted(alberti)] == [(0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0)]


def test_an_arpeggio_steps_along_the_beats_where_the_tempo_moves():
    # beats 0.5 s apart, then 0.6 s: the eighths halve each beat where it falls, not a fixed period
    grid = BeatGrid(beats=(0.0, 0.5, 1.0, 1.6, 2.2), steps_per_beat=4)
    assert eighths_in(grid, 0.0, 2.2, 2) == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0, 1.3, 1.6, 1.9])
    assert eighths_in(grid, 1.0, 2.2, 3) == pytest.approx([1.0, 1.2, 1.4, 1.6, 1.8, 2.0])


def test_the_low_notes_are_replaced_by_the_harmony_of_each_half_bar():
    # C major for a bar, then A minor, as a muddy low transcription under a melody
    # (the melody as the melody step leaves it: in the right hand, so its passing notes are no chord tones)
    melody = [Note(t, t + 0.5, p, 90, "right") for t, p in zip(np.arange(0, 4, 0.5), [72, 74, 76, 72, 69, 72, 76, 81])]
    mud = notes_of([36, 48, 52, 55], 0.0, 2.0, 60) + notes_of([45, 48, 52, 57], 2.0, 4.0, 60)
    params = AccompanyParams(pattern="block", every="half-bar", split=55)
    piece = accompany(Piece(notes=melody + mud, grid=GRID), params, StepContext())
    left = [n for n in piece.notes if n.hand == LEFT]
    assert {n.start for n in left} == {0.0, 1.0, 2.0, 3.0}
    by_start = {t: sorted(n.pitch for n in left if n.start == t) for t in (0.0, 1.0, 2.0, 3.0)}
    assert by_start[0.0] == by_start[1.0] == [36, 40, 43]  # C
    assert by_start[2.0] == by_start[3.0] == [45, 48, 52]  # Am
    assert all(n in piece.notes for n in melody)  # the right hand is untouched
    assert not any(n in piece.notes for n in mud if n.pitch < 55)



@pytest.mark.parametrize(("steps_per_beat", "offbeat"), [(4, 0.5), (3, 2 / 3)])
def test_a_broken_chord_over_one_beat_is_struck_on_the_grid(steps_per_beat, offbeat):
    # a beat a second: the chord after the bass falls on the grid's last eighth of the beat, which in
    # triplet time is the third triplet (the half beat there is no step of the song's grid)
    grid = BeatGrid(beats=tuple(float(b) for b in range(5)), beats_per_bar=4, first_downbeat=0, steps_per_beat=steps_per_beat)
    melody = [Note(0.0, 4.0, 72, 90, "right")]
    low = notes_of([36, 40, 43], 0.0, 4.0, 60)
    piece = accompany(Piece(notes=melody + low, grid=grid), AccompanyParams(pattern="broken", every="beat", split=55), StepContext())
    chord_onsets = sorted({n.start for n in piece.notes if n.hand == LEFT and n.pitch != 36})
    assert chord_onsets == pytest.approx([beat + offbeat for beat in range(4)])


class Chords:
    """The song's chords as the audio analysis reports them: (root, pitch classes) from each time on."""

    def __init__(self, *changes):
        self.changes = changes

    def chord_at(self, time: float):
        found = [c for t, c in self.changes if t <= time]
        return found[-1] if found else None


def test_where_the_notes_are_sparse_the_audio_names_the_chord():
    melody = [Note(0.0, 2.0, 77, 90), Note(2.0, 4.0, 76, 90)]  # two long notes: nothing to read a chord from
    analysis = Chords((0.0, (5, {5, 9, 0})), (2.0, (0, {0, 4, 7})))  # F, then C
    piece = accompany(Piece(notes=melody, grid=GRID), AccompanyParams(pattern="bass", every="bar"), StepContext(analysis=analysis))
    assert [(n.start, n.pitch) for n in piece.notes if n.hand == LEFT] == [(0.0, 41), (2.0, 36)]  # F2, C2
    only_notes = accompany(Piece(notes=melody, grid=GRID), AccompanyParams(pattern="bass", every="bar", chords_from="notes"),
                           StepContext(analysis=analysis))
    assert [n.pitch % 12 for n in only_notes.notes if n.hand == LEFT] == [5, 4]  # the melody's own notes as roots
