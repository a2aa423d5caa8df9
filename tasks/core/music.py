"""Musical time for the stages that write a score-ready cover: the song's beat grid and a piece of piano music.

A `BeatGrid` is where the beats fall in seconds, tracked once per song (tasks/arrange/analysis.py)
and shared by the arrangement steps, the MIDI writer (its tempo map puts bar lines on the
downbeats), the video and the score. The meter is one per song: `beats_per_bar` beats to a bar
(the time signature's numerator over a quarter note), the bars starting at `first_downbeat`; the
beats before it are a pickup. `steps_per_beat` is the finest grid notes are placed on: 4 for a
song in straight time (sixteenths), 3 for one that swings or moves in triplets (eighth triplets).

A `Piece` is what an arrangement makes: notes (each may name its hand), sustain-pedal intervals,
and the grid it was arranged on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from covermill.models.notes import Note, sort_notes

RIGHT, LEFT = "right", "left"  # Note.hand; "" = not assigned


@dataclass(frozen=True)
class BeatGrid:
    beats: tuple[float, ...]  # seconds, strictly increasing
    beats_per_bar: int = 4
    first_downbeat: int = 0  # index into beats of the first bar's first beat, 0 .. beats_per_bar - 1
    steps_per_beat: int = 4  # 4: sixteenths; 3: eighth triplets
    source: str = "audio"  # where the beats came from: audio, notes, or fixed (a given tempo)

    def __post_init__(self) -> None:
        beats = np.asarray(self.beats, dtype=float)
        if len(beats) < 2 or np.any(np.diff(beats) <= 0):
            raise ValueError("a beat grid needs at least two strictly increasing beat times")
        if self.beats_per_bar < 1 or not 0 <= self.first_downbeat < self.beats_per_bar:
            raise ValueError(f"first_downbeat must lie in 0..{self.beats_per_bar - 1}, got {self.first_downbeat}")
        if self.steps_per_beat < 1:
            raise ValueError("steps_per_beat must be at least 1")
        object.__setattr__(self, "beats", tuple(float(b) for b in beats))

    @property
    def times(self) -> np.ndarray:
        """(n,) beat times, seconds."""
        return np.asarray(self.beats)

    @property
    def downbeats(self) -> np.ndarray:
        """(k,) times of the bars' first beats."""
        return self.times[self.first_downbeat::self.beats_per_bar]

    @property
    def tempo(self) -> float:
        """Median tempo, beats per minute."""
        return 60.0 / float(np.median(np.diff(self.times)))

    def steps(self) -> np.ndarray:
        """(m,) every grid point: each beat split `steps_per_beat` ways, the last beat included."""
        beats = self.times
        fractions = np.arange(self.steps_per_beat) / self.steps_per_beat
        inner = (beats[:-1, None] + np.diff(beats)[:, None] * fractions[None, :]).ravel()
        return np.append(inner, beats[-1])

    def beat_position(self, seconds: np.ndarray | float) -> np.ndarray:
        """Times as fractional beat indices (0.0 = the first beat), extrapolated at the first and
        last beat lengths outside the tracked beats."""
        beats = self.times
        index = np.arange(len(beats), dtype=float)
        t = np.asarray(seconds, dtype=float)
        inside = np.interp(t, beats, index)
        before = (t - beats[0]) / (beats[1] - beats[0])
        after = len(beats) - 1 + (t - beats[-1]) / (beats[-1] - beats[-2])
        return np.where(t < beats[0], before, np.where(t > beats[-1], after, inside))

    def seconds_at(self, position: np.ndarray | float) -> np.ndarray:
        """The inverse of beat_position: fractional beat indices to seconds."""
        beats = self.times
        p = np.asarray(position, dtype=float)
        inside = np.interp(p, np.arange(len(beats), dtype=float), beats)
        before = beats[0] + p * (beats[1] - beats[0])
        after = beats[-1] + (p - (len(beats) - 1)) * (beats[-1] - beats[-2])
        return np.where(p < 0, before, np.where(p > len(beats) - 1, after, inside))

    def to_json(self) -> dict[str, Any]:
        return {"beats": [round(b, 6) for b in self.beats], "beats_per_bar": self.beats_per_bar,
                "first_downbeat": self.first_downbeat, "steps_per_beat": self.steps_per_beat, "source": self.source}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BeatGrid:
        return cls(beats=tuple(data["beats"]), beats_per_bar=int(data["beats_per_bar"]),
                   first_downbeat=int(data["first_downbeat"]), steps_per_beat=int(data["steps_per_beat"]),
                   source=str(data.get("source", "audio")))

    @classmethod
    def fixed(cls, end: float, bpm: float = 120.0, beats_per_bar: int = 4) -> BeatGrid:
        """A steady grid from 0 s past `end` (nothing rhythmic to follow: 120 BPM by default)."""
        period = 60.0 / bpm
        count = max(2, int(np.ceil(end / period)) + 2)
        return cls(beats=tuple(np.arange(count) * period), beats_per_bar=beats_per_bar, source="fixed")


@dataclass(frozen=True)
class Piece:
    """Piano music: notes (with their hands once assigned), sustain pedal, and the grid they sit on."""

    notes: list[Note]
    pedal: tuple[tuple[float, float], ...] = ()  # (down, up) seconds, in order, not overlapping
    grid: BeatGrid | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. the title for the score's header

    def with_notes(self, notes: list[Note]) -> Piece:
        return replace(self, notes=sort_notes(notes))

    def hands(self) -> dict[str, list[Note]]:
        """Notes by hand: "right", "left" and "" (not assigned)."""
        found: dict[str, list[Note]] = {RIGHT: [], LEFT: [], "": []}
        for note in self.notes:
            found.setdefault(note.hand, []).append(note)
        return found


def grid_to_file(grid: BeatGrid) -> str:
    return json.dumps(grid.to_json(), indent=1) + "\n"


def grid_from_file(text: str) -> BeatGrid:
    return BeatGrid.from_json(json.loads(text))
