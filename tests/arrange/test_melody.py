"""melody: the line the lead voice sings (or the top line), on top, louder, legato; on tiny chords, then a real score."""

from __future__ import annotations

import numpy as np

from covermill.models.notes import Note
from covermill.tasks.arrange.melody import MelodyParams, choose, melody
from covermill.tasks.arrange.registry import StepContext
from covermill.tasks.arrange.steps import FoldParams, fold
from covermill.tasks.core.midi import read_midi
from covermill.tasks.core.music import RIGHT, Piece


class Sung:
    """A lead voice for the step to follow: MIDI pitch from each start time on (NaN = nobody sings)."""

    def __init__(self, *changes: tuple[float, float]):
        self.times = np.array([t for t, _ in changes])
        self.pitches = np.array([p for _, p in changes])

    def melody_at(self, times: np.ndarray) -> np.ndarray:
        return self.pitches[np.searchsorted(self.times, times, side="right") - 1]


def run(notes: list[Note], analysis=None, **params) -> list[Note]:
    return melody(Piece(notes=notes), MelodyParams(**params), StepContext(analysis=analysis)).notes


def test_the_sung_pitch_class_is_chosen_nearest_its_register():
    chord = [Note(0, 1, p, 80) for p in (60, 64, 67, 76)]
    assert choose(chord, 64.2).pitch == 64
    assert choose(chord, 75.6).pitch == 76  # E5 nearer than E4
    assert choose(chord, 62.0).pitch == 76  # D: nobody plays it, so the top note
    assert choose(chord, float("nan")).pitch == 76


def test_the_melody_ends_on_top_louder_and_in_the_right_hand():
    chord = [Note(0, 1, 60, 80), Note(0, 1, 64, 80), Note(0, 1, 67, 80)]
    out = run(chord, Sung((0.0, 64.0)))
    lead = [n for n in out if n.hand == RIGHT]
    assert [(n.pitch, n.velocity) for n in lead] == [(64, 88)]
    others = sorted((n.pitch, n.velocity) for n in out if n.hand != RIGHT)
    assert others == [(55, 72), (60, 72)]  # G4 above the melody moved an octave down, both scaled by 0.9


def test_without_a_lead_voice_the_top_line_is_the_melody_and_legato():
    line = [Note(0.0, 0.2, 72, 80), Note(0.5, 0.7, 74, 80), Note(3.0, 3.2, 76, 80)]
    out = run(line + [Note(0.0, 0.5, 60, 80)])
    lead = sorted((n.start, n.end, n.pitch) for n in out if n.hand == RIGHT)
    assert lead == [(0.0, 0.5, 72), (0.5, 2.0, 74), (3.0, 3.2, 76)]  # held to the next, at most 1.5 s


def test_a_note_ringing_above_the_next_melody_note_ends_as_it_starts():
    notes = [Note(0, 3, 70, 80), Note(0, 0.5, 74, 80), Note(1, 2, 62, 80)]
    out = run(notes, Sung((0.0, 74.0), (1.0, 62.0)))
    held = next(n for n in out if n.pitch == 70)
    assert held.end == 1.0


def test_on_a_real_score_nothing_sounds_above_the_melody(reference_midis):
    band = fold([n for n in read_midi(reference_midis["song_b"]) if n.start < 40.0], FoldParams())
    out = run(band)
    lead = [n for n in out if n.hand == RIGHT]
    assert len(lead) > 50
    for note in lead:
        sounding = [n.pitch for n in out if n.start <= note.start < n.end]
        assert max(sounding) == note.pitch, note
    assert all(a.end <= b.start + 1e-9 for a, b in zip(lead, lead[1:]))  # one line, never two notes at once
