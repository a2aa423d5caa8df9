"""A piece written as MIDI is a score: the tempo map follows the beats, bar lines fall on the
downbeats (a pickup is a short first bar), two hands are two tracks, the pedal is controller 64;
checked with pretty_midi and with music21, as a score editor would read it."""

from __future__ import annotations

import music21
import numpy as np
import pretty_midi
import pytest

from covermill.models.notes import Note
from covermill.tasks.core.midi import read_midi, read_piece, write_midi, write_piece
from covermill.tasks.core.music import LEFT, RIGHT, BeatGrid, Piece

# A song at a drifting tempo (0.50 s a beat, slowing to 0.56), its first beat at 0.83 s and its
# first downbeat on the second beat: a one-beat pickup, then bars of four.
BEATS = tuple(0.83 + np.cumsum(np.concatenate([[0.0], np.linspace(0.50, 0.56, 23)])))
GRID = BeatGrid(beats=BEATS, beats_per_bar=4, first_downbeat=1)


def two_hands() -> list[Note]:
    """A left-hand note on every downbeat, a right-hand chord on every second beat."""
    notes = [Note(t, t + 0.4, 43, 70, LEFT) for t in GRID.downbeats[:-1]]
    notes += [Note(t, t + 0.3, p, 80, RIGHT) for t in GRID.times[1:-1:2] for p in (67, 71, 74)]
    return notes


@pytest.fixture
def written(tmp_path):
    piece = Piece(notes=two_hands(), pedal=((GRID.downbeats[0], GRID.downbeats[1] - 0.05),
                                            (GRID.downbeats[1], GRID.downbeats[2] - 0.05)), grid=GRID,
                  meta={"title": "Planet Blupi theme 4"})
    return piece, write_piece(piece, tmp_path / "piece.mid")


def test_notes_hands_and_pedal_come_back(written):
    piece, path = written
    back = read_piece(path)
    assert len(back.notes) == len(piece.notes)
    for original, read in zip(sorted(piece.notes), sorted(back.notes)):
        assert read.pitch == original.pitch and read.hand == original.hand and read.velocity == original.velocity
        assert abs(read.start - original.start) < 1e-3 and abs(read.end - original.end) < 1e-3
    assert np.allclose(np.array(back.pedal), np.array(piece.pedal), atol=1e-3)


def test_the_tempo_map_puts_bar_lines_on_the_downbeats(written):
    _, path = written
    midi = pretty_midi.PrettyMIDI(str(path))
    assert [i.name for i in midi.instruments] == ["Right", "Left"]
    # the pickup bar: two lead-in beats (0 s and 0.33 s, before the first tracked beat) and the tracked beat before the downbeat
    assert [(s.numerator, s.denominator) for s in midi.time_signature_changes] == [(3, 4), (4, 4)]
    beats, end = midi.get_beats(), midi.get_end_time()  # pretty_midi lists beats up to the last note's end
    # every tracked beat is a beat of the file (the lead-in before 0.83 s adds beats before them)
    assert all(np.min(np.abs(beats - b)) < 1e-3 for b in BEATS if b < end - 1e-6)
    downbeats = midi.get_downbeats()
    assert len(downbeats) >= len(GRID.downbeats) - 1
    assert all(np.min(np.abs(downbeats - d)) < 1e-3 for d in GRID.downbeats if d < end - 1e-6)
    grid = read_piece(path).grid
    read_back = grid.downbeats  # the three pickup beats come before the first
    assert grid.beats_per_bar == 4 and len(read_back) >= 4
    assert np.allclose(read_back, GRID.downbeats[:len(read_back)], atol=1e-3)


def test_music21_reads_two_staves_with_the_downbeats_on_beat_one(written):
    _, path = written
    score = music21.converter.parse(str(path), quantizePost=False)
    parts = list(score.parts)
    assert len(parts) == 2
    left = parts[1]
    meters = [ts.ratioString for ts in left.recurse().getElementsByClass(music21.meter.TimeSignature)]
    assert meters[-1] == "4/4"
    bass = [n for n in left.recurse().notes]
    assert len(bass) == len(GRID.downbeats) - 1
    assert all(n.beat == 1.0 for n in bass)  # every downbeat note opens its bar
    measures = [n.getContextByClass(music21.stream.Measure).number for n in bass]
    assert measures == sorted(set(measures)) and len(set(measures)) == len(bass)  # one bar each, in order


def test_a_transcription_without_a_grid_is_one_track_at_120_bpm(tmp_path):
    notes = [Note(0.1, 0.6, 60, 90), Note(0.6, 1.0, 64, 90)]
    path = write_midi(notes, tmp_path / "raw.mid")
    midi = pretty_midi.PrettyMIDI(str(path))
    assert len(midi.instruments) == 1 and midi.instruments[0].name == "Piano"
    assert midi.get_tempo_changes()[1].tolist() == pytest.approx([120.0])
    assert read_piece(path).grid is None
    assert [(round(n.start, 3), round(n.end, 3), n.pitch, n.hand) for n in read_midi(path)] == [
        (0.1, 0.6, 60, ""), (0.6, 1.0, 64, "")]


def test_a_grid_starting_at_zero_needs_no_lead_in(tmp_path):
    grid = BeatGrid(beats=tuple(np.arange(12) * 0.4), beats_per_bar=3)
    path = write_piece(Piece(notes=[Note(0.0, 0.3, 60, 80), Note(1.2, 1.5, 62, 80)], grid=grid), tmp_path / "waltz.mid")
    midi = pretty_midi.PrettyMIDI(str(path))
    assert [(s.numerator, s.time) for s in midi.time_signature_changes] == [(3, 0.0)]
    assert midi.get_downbeats()[:2].tolist() == pytest.approx([0.0, 1.2])


def test_a_note_that_ends_before_it_starts_is_refused(tmp_path):
    with pytest.raises(ValueError, match="ends before it starts"):
        write_piece(Piece(notes=[Note(1.0, 1.0, 60, 80)]), tmp_path / "bad.mid")
