"""quantise: notes onto the song's beat grid, their lengths onto note values a score can write.

Onsets move to the nearest grid point: each beat split `steps_per_beat` ways, 4 for a song in
straight time (sixteenths) and 3 for one in triplets, as the song's analysis found (or as the
style says). A note's length, counted in beats along the grid, becomes the nearest note value of
that kind (sixteenth .. whole and dotted values in straight time; eighth-triplet multiples in
triplets), so that the score shows plain values instead of ties of odd fractions. The grid is the
piece's (tracked from the audio); a piece without one gets beats tracked from its notes, or a
steady grid when the style gives `grid` seconds per beat.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import Field

from covermill.tasks.arrange.beats import beat_times
from covermill.tasks.arrange.registry import StepContext, register
from covermill.tasks.arrange.steps import resolve_same_pitch
from covermill.tasks.core.music import BeatGrid, Piece
from covermill.tasks.core.settings import Settings

# Note values in beats (a quarter note is one beat): straight time, and triplet time.
STRAIGHT_VALUES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
TRIPLET_VALUES = (1 / 3, 2 / 3, 1.0, 4 / 3, 2.0, 3.0, 4.0, 6.0, 8.0)


class QuantiseParams(Settings):
    grid: float | None = Field(None, gt=0.0)  # seconds per beat of a steady grid; None = the song's (or tracked) beats
    subdivision: int | None = Field(None, ge=1)  # grid points per beat; None = the song's (4 straight, 3 triplets)
    strength: float = Field(1.0, ge=0.0, le=1.0)  # 1 = onto the grid, 0 = unchanged
    ends: bool = True  # lengths snapped to note values too (else each note keeps its length)


def grid_for(piece: Piece, grid_seconds: float | None = None) -> BeatGrid:
    """The grid a step follows: a steady one when asked, else the piece's, else beats tracked from its notes."""
    end = max((n.end for n in piece.notes), default=1.0)
    if grid_seconds is not None:
        return BeatGrid.fixed(end, bpm=60.0 / grid_seconds)
    if piece.grid is not None:
        return piece.grid
    beats = beat_times(piece.notes)
    return BeatGrid(beats=tuple(beats), source="notes") if len(beats) >= 2 else BeatGrid.fixed(end)


def note_value(beats: np.ndarray, steps_per_beat: int) -> np.ndarray:
    """Lengths in beats (n,) to the nearest note value of the grid's kind; beyond the longest value,
    to whole beats."""
    values = np.array(TRIPLET_VALUES if steps_per_beat % 3 == 0 else STRAIGHT_VALUES)
    nearest = values[np.argmin(np.abs(beats[:, None] - values[None, :]), axis=1)]
    return np.where(beats > values[-1], np.round(beats), nearest)


@register("quantise", QuantiseParams, on_piece=True)
def quantise(piece: Piece, p: QuantiseParams, context: StepContext) -> Piece:
    if not piece.notes:
        return piece
    grid = grid_for(piece, p.grid)
    steps = p.subdivision or grid.steps_per_beat
    notes = piece.notes
    start = grid.beat_position(np.array([n.start for n in notes]))
    end = grid.beat_position(np.array([n.end for n in notes]))
    snapped = start + p.strength * (np.round(start * steps) / steps - start)
    length = end - start
    if p.ends:
        length = length + p.strength * (note_value(length, steps) - length)
    length = np.maximum(length, 1.0 / steps)  # nothing shorter than one grid step
    starts, ends = grid.seconds_at(snapped), grid.seconds_at(snapped + length)
    moved = [n._replace(start=float(max(0.0, s)), end=float(e)) for n, s, e in zip(notes, starts.tolist(), ends.tolist())]
    return replace(piece, notes=resolve_same_pitch(moved, merge_window=1e-6), grid=piece.grid or grid)
