"""Where the 88 keys of a piano (A0 = MIDI 21 to C8 = MIDI 108) lie across a frame.

White keys share the width evenly (52 of them); a black key is `BLACK_WIDTH` of a white key wide,
centred on the line between its two white neighbours, and `BLACK_LENGTH` of the keyboard long. A
white key is drawn as two rectangles so nothing overlaps: the `upper` part between its black
neighbours and the `lower` part below them, full width. All coordinates are pixel columns,
`x0` inclusive and `x1` exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOWEST, HIGHEST = 21, 108  # A0, C8
KEYS = HIGHEST - LOWEST + 1
BLACK_CLASSES = frozenset({1, 3, 6, 8, 10})  # C#, D#, F#, G#, A#
BLACK_WIDTH = 0.58  # of a white key, as on a real keyboard (~13.7 of 23.5 mm)
BLACK_LENGTH = 0.63  # of the keyboard's length (~95 of 150 mm)


def is_black(pitch: np.ndarray | int) -> np.ndarray:
    """(n,) bool: whether each MIDI pitch is a black key."""
    return np.isin(np.asarray(pitch) % 12, list(BLACK_CLASSES))


@dataclass(frozen=True)
class Keyboard:
    """Key columns for a frame `width` pixels wide; arrays are indexed by pitch - LOWEST, shape (88,)."""

    width: int
    x0: np.ndarray  # the key's columns (a white key's lower part; a black key's whole)
    x1: np.ndarray
    upper_x0: np.ndarray  # a white key's part between its black neighbours; equal to x0/x1 for a black key
    upper_x1: np.ndarray
    black: np.ndarray  # bool

    @classmethod
    def across(cls, width: int) -> Keyboard:
        pitches = np.arange(LOWEST, HIGHEST + 1)
        black = is_black(pitches)
        white_index = np.cumsum(~black) - 1  # a black key gets the index of the white key below it
        white_width = width / int((~black).sum())
        left = np.where(black, (white_index + 1 - BLACK_WIDTH / 2) * white_width, white_index * white_width)
        right = np.where(black, left + BLACK_WIDTH * white_width, (white_index + 1) * white_width)
        x0 = np.clip(np.round(left), 0, width).astype(np.int32)
        x1 = np.clip(np.round(right), 0, width).astype(np.int32)
        upper_x0, upper_x1 = x0.copy(), x1.copy()
        for i in np.flatnonzero(~black):
            if i > 0 and black[i - 1]:
                upper_x0[i] = x1[i - 1]
            if i + 1 < KEYS and black[i + 1]:
                upper_x1[i] = x0[i + 1]
        return cls(width, x0, x1, upper_x0, upper_x1, black)

    def columns(self, pitch: int) -> tuple[int, int]:
        """(x0, x1) of a key's widest part; a pitch off the keyboard is folded by octaves onto it."""
        i = fold_onto_keys(pitch) - LOWEST
        return int(self.x0[i]), int(self.x1[i])


def fold_onto_keys(pitch: np.ndarray | int) -> np.ndarray:
    """Pitches below A0 or above C8 moved by octaves onto the keyboard (same pitch class)."""
    p = np.asarray(pitch)
    p = np.where(p < LOWEST, p + 12 * np.ceil((LOWEST - p) / 12), p)
    return np.where(p > HIGHEST, p - 12 * np.ceil((p - HIGHEST) / 12), p).astype(np.int64)
