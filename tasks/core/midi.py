"""Note lists to and from MIDI files (the artifact users edit in MuseScore)."""

from __future__ import annotations

from pathlib import Path

import pretty_midi

from covermill.models.notes import Note, sort_notes
from covermill.tasks.core.atomic import atomic_output

# 960 ticks per beat at pretty_midi's 120 BPM: about half a millisecond per tick, so a note list
# survives a write/read round trip to well within any audible difference.
RESOLUTION = 960


def write_midi(notes: list[Note], path: Path, program: int = 0) -> Path:
    """One-track MIDI of `notes` played by GM `program` (0 = acoustic grand piano), atomically."""
    midi = pretty_midi.PrettyMIDI(resolution=RESOLUTION)
    instrument = pretty_midi.Instrument(program=program)
    for note in sort_notes(notes):
        if note.end <= note.start:
            raise ValueError(f"note {note} ends before it starts")
        if not 0 <= note.pitch <= 127:
            raise ValueError(f"note {note} has a pitch outside MIDI's 0..127")
        instrument.notes.append(pretty_midi.Note(
            velocity=min(127, max(1, int(note.velocity))), pitch=int(note.pitch),
            start=float(note.start), end=float(note.end),
        ))
    midi.instruments.append(instrument)
    with atomic_output(Path(path)) as tmp:
        midi.write(str(tmp))
    return Path(path)


def read_midi(path: Path) -> list[Note]:
    """Every pitched note of a MIDI file (all non-drum tracks merged), in onset order."""
    midi = pretty_midi.PrettyMIDI(str(path))
    return sort_notes([
        Note(float(n.start), float(n.end), int(n.pitch), int(n.velocity))
        for instrument in midi.instruments if not instrument.is_drum
        for n in instrument.notes
        if n.end > n.start
    ])
