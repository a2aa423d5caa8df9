"""The note list every generator returns and every arrangement style transforms."""

from __future__ import annotations

from typing import NamedTuple


class Note(NamedTuple):
    start: float  # seconds
    end: float  # seconds
    pitch: int  # MIDI number
    velocity: int  # 1..127

    @property
    def duration(self) -> float:
        return self.end - self.start


def sort_notes(notes: list[Note]) -> list[Note]:
    """Onset order with deterministic ties, so every style and the ranking see the same sequence."""
    return sorted(notes, key=lambda n: (n.start, n.pitch, n.end, n.velocity))
