"""pedal: the sustain pedal changed with the harmony, instead of notes stretched to ring on.

A pianist holds the pedal through one harmony and changes it as the next begins: up exactly at the
change (so the old chord stops), down again `lift` seconds later (so the new chord is caught, a
"legato pedal"). The changes come from the harmony of the notes (a chord of two or more keys whose
pitch classes differ from the last: as the sustain step reads it), taken on the grid's beats when
the piece has a grid, and at least every `max_hold` seconds (a long harmony still gets a fresh
pedal: overtones pile up). Nothing is pedalled where nothing sounds. The notes are not touched.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import Field

from covermill.models.notes import CHORD_WINDOW, onset_groups
from covermill.tasks.arrange.registry import StepContext, register
from covermill.tasks.core.music import Piece
from covermill.tasks.core.settings import Settings


class PedalParams(Settings):
    lift: float = Field(0.06, ge=0.0, le=0.5)  # seconds the pedal stays up at a change
    max_hold: float = Field(4.0, gt=0.5)  # the pedal is changed at least this often (s)
    min_chord_size: int = Field(2, ge=1)  # keys struck together that can make a new harmony
    on_beats: bool = True  # changes only where a beat of the grid falls (when the piece has a grid)
    chord_window: float = Field(CHORD_WINDOW, ge=0.0)


def harmony_changes(piece: Piece, p: PedalParams) -> list[float]:
    """Onsets (s) where the pitch classes struck differ from the last harmony, in order."""
    changes: list[float] = []
    harmony: frozenset[int] = frozenset()
    beats = piece.grid.times if piece.grid is not None and p.on_beats else None
    for group in onset_groups(piece.notes, p.chord_window):
        classes = frozenset(n.pitch % 12 for n in group)
        if len(group) < p.min_chord_size or classes == harmony:
            continue
        t = group[0].start
        if beats is not None and len(beats) and np.min(np.abs(beats - t)) > p.chord_window:
            continue  # between the beats: a passing harmony, not a change
        changes.append(t)
        harmony = classes
    return changes


def sounding_spans(piece: Piece) -> list[tuple[float, float]]:
    """The stretches where some note sounds, merged, in order."""
    spans: list[tuple[float, float]] = []
    for note in sorted(piece.notes, key=lambda n: n.start):
        if spans and note.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], note.end))
        else:
            spans.append((note.start, note.end))
    return spans


@register("pedal", PedalParams, on_piece=True)
def pedal(piece: Piece, p: PedalParams, context: StepContext) -> Piece:
    changes = harmony_changes(piece, p)
    intervals: list[tuple[float, float]] = []
    for start, end in sounding_spans(piece):
        inside = [t for t in changes if start <= t < end]
        marks = sorted({start, *inside})
        filled: list[float] = []
        for a, b in zip(marks, marks[1:] + [end]):  # a change at least every max_hold seconds
            filled += list(np.arange(a, b - 1e-9, p.max_hold)) if b - a > p.max_hold else [a]
        for n, down in enumerate(filled):
            up = filled[n + 1] if n + 1 < len(filled) else end
            down = down + (p.lift if n > 0 else 0.0)
            if up - down > p.lift:
                intervals.append((float(down), float(up)))
    return replace(piece, pedal=tuple(intervals))
