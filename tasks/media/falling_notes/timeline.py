"""The notes of a piece as arrays a frame can look up by time: what falls, what sounds, the pedal, the bars.

Hands come from the MIDI's hand tracks (tasks/core/midi.py names them Right and Left); a note of
no hand (a one-track MIDI) goes to the right hand from `split` up, to the left below it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from covermill.tasks.core.music import LEFT, Piece
from covermill.tasks.media.falling_notes.keyboard import fold_onto_keys

RIGHT_HAND, LEFT_HAND = 0, 1  # NoteTimeline.hand


@dataclass(frozen=True)
class NoteTimeline:
    """(n,) arrays sorted by onset; pedal (k, 2) down/up seconds; bars (b,) downbeat seconds."""

    start: np.ndarray  # float64 seconds
    end: np.ndarray  # float64 seconds
    pitch: np.ndarray  # int64, on the 88 keys (folded by octaves when off them)
    velocity: np.ndarray  # int64, 1..127
    hand: np.ndarray  # int8, RIGHT_HAND or LEFT_HAND
    pedal: np.ndarray  # float64 (k, 2)
    bars: np.ndarray  # float64 (b,)

    @classmethod
    def from_piece(cls, piece: Piece, split: int = 60) -> NoteTimeline:
        notes = sorted(piece.notes, key=lambda n: (n.start, n.pitch))
        pitch = np.array([n.pitch for n in notes], dtype=np.int64)
        named = np.array([n.hand for n in notes], dtype=object)
        hand = np.where(named == LEFT, LEFT_HAND, RIGHT_HAND)
        unnamed = named == ""
        hand[unnamed] = np.where(pitch[unnamed] >= split, RIGHT_HAND, LEFT_HAND)
        pedal = np.array(piece.pedal, dtype=float).reshape(-1, 2)
        bars = piece.grid.downbeats.astype(float) if piece.grid is not None else np.zeros(0)
        return cls(
            start=np.array([n.start for n in notes], dtype=float),
            end=np.array([n.end for n in notes], dtype=float),
            pitch=fold_onto_keys(pitch) if len(pitch) else pitch,
            velocity=np.clip(np.array([n.velocity for n in notes], dtype=np.int64), 1, 127),
            hand=hand.astype(np.int8),
            pedal=pedal,
            bars=bars,
        )

    @classmethod
    def read(cls, midi: Path, split: int = 60) -> NoteTimeline:
        from covermill.tasks.core.midi import read_piece  # pretty_midi: only where a file is read

        return cls.from_piece(read_piece(Path(midi)), split)

    def __len__(self) -> int:
        return len(self.start)

    @property
    def end_time(self) -> float:
        """When the last note ends (0 for no notes)."""
        return float(self.end.max()) if len(self) else 0.0

    @functools.cached_property
    def longest(self) -> float:
        """The longest note's duration (seconds): how far back a lookup by onset must reach. Every
        frame asks twice, so it is computed once."""
        return float((self.end - self.start).max()) if len(self) else 0.0

    def overlapping(self, t0: float, t1: float) -> np.ndarray:
        """(m,) indices of the notes sounding at some time in [t0, t1): onset before t1, end after t0."""
        lo = np.searchsorted(self.start, t0 - self.longest, side="left")
        hi = np.searchsorted(self.start, t1, side="left")
        found = np.arange(lo, hi)
        return found[self.end[lo:hi] > t0]

    def sounding(self, t: float) -> np.ndarray:
        """(m,) indices of the notes whose key is down at `t`: onset <= t < end."""
        hi = np.searchsorted(self.start, t, side="right")
        lo = np.searchsorted(self.start, t - self.longest, side="left")
        found = np.arange(lo, hi)
        return found[self.end[lo:hi] > t]

    def pedal_down(self, t: float) -> bool:
        return bool(np.any((self.pedal[:, 0] <= t) & (t < self.pedal[:, 1])))

    def bars_between(self, t0: float, t1: float) -> np.ndarray:
        """(b,) downbeat times in [t0, t1)."""
        return self.bars[(self.bars >= t0) & (self.bars < t1)]
