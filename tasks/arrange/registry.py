"""The arrangement steps a style may name, and what each step is given.

A step is either note-level, `run(notes, params)` (and `rng` when random), or piece-level,
`run(piece, params, context)`: the latter sees the whole Piece (notes, pedal, beat grid) and the
song's analysis (beat grid, melody, chords; tasks/arrange/analysis.py). `Step.apply` runs either
kind on a piece, so a style is a plain list of steps whatever their level.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from covermill.tasks.core.music import Piece
from covermill.tasks.core.settings import Settings


@dataclass(frozen=True)
class StepContext:
    """What a piece-level step may read besides the piece: the song's analysis (None when it was not
    tracked, e.g. in a test) and the random generator of a random step (None for the others)."""

    analysis: Any = None
    rng: np.random.Generator | None = None


@dataclass(frozen=True)
class Step:
    name: str
    params: type[Settings]
    run: Callable[..., Any]  # note-level: (notes, params[, rng]) -> notes; piece-level: (piece, params, context) -> Piece
    random: bool = False
    on_piece: bool = False

    def apply(self, piece: Piece, params: Settings, context: StepContext) -> Piece:
        if self.on_piece:
            return self.run(piece, params, context)
        notes = self.run(piece.notes, params, context.rng) if self.random else self.run(piece.notes, params)
        return piece.with_notes(notes)


STEPS: dict[str, Step] = {}


def register(name: str, params: type[Settings], random: bool = False, on_piece: bool = False):
    """Decorator: the function becomes the step `name` (see the module docstring for its signature)."""
    def add(run: Callable[..., Any]) -> Callable[..., Any]:
        STEPS[name] = Step(name, params, run, random, on_piece)
        return run
    return add
