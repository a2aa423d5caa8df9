"""The note list every generator returns and every arrangement style transforms."""

from __future__ import annotations

from typing import NamedTuple

PIANO_LOW = 21  # A0, the lowest key of an 88-key piano
PIANO_HIGH = 108  # C8, the highest


class Note(NamedTuple):
    start: float  # seconds
    end: float  # seconds
    pitch: int  # MIDI number
    velocity: int  # 1..127
    hand: str = ""  # "right" or "left" once an arrangement assigns hands; "" before

    @property
    def duration(self) -> float:
        return self.end - self.start


def sort_notes(notes: list[Note]) -> list[Note]:
    """Onset order with deterministic ties, so every style and the ranking see the same sequence."""
    return sorted(notes, key=lambda n: (n.start, n.pitch, n.end, n.velocity, n.hand))


def polyphony(notes: list[Note]) -> int:
    """Largest number of notes sounding at the same instant (a note ending as another starts does not count)."""
    events = sorted([(n.start, 1) for n in notes] + [(n.end, -1) for n in notes])
    most = current = 0
    for _, change in events:  # at equal times -1 sorts first: an ending frees its voice first
        current += change
        most = max(most, current)
    return most


CHORD_WINDOW = 0.03  # onsets closer than this (s) count as struck together


def onset_groups(notes: list[Note], window: float = CHORD_WINDOW) -> list[list[Note]]:
    """Notes in onset order, grouped into chords: each group spans at most `window` seconds."""
    groups: list[list[Note]] = []
    for note in sort_notes(notes):
        if groups and note.start - groups[-1][0].start <= window:
            groups[-1].append(note)
        else:
            groups.append([note])
    return groups
