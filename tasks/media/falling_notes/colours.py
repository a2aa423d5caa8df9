"""The falling-notes palette, and RGB to the video's YUV (BT.709, limited range, as the mp4 is tagged).

Frames are drawn in YUV so FFmpeg gets yuv420p as is: converting RGB frames would cost it a
swscale pass per frame.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import Field

from covermill.tasks.core.settings import Settings

Channel = Annotated[int, Field(ge=0, le=255)]
RGB = tuple[Channel, Channel, Channel]
KR, KB = 0.2126, 0.0722  # BT.709 luma weights of red and blue


def to_yuv(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB 0..255 -> (..., 3) uint8 Y'CbCr, BT.709 limited range (Y 16..235, C 16..240)."""
    c = np.asarray(rgb, dtype=float) / 255.0
    y = KR * c[..., 0] + (1 - KR - KB) * c[..., 1] + KB * c[..., 2]
    cb = (c[..., 2] - y) / (2 * (1 - KB))
    cr = (c[..., 0] - y) / (2 * (1 - KR))
    out = np.stack([16 + 219 * y, 128 + 224 * cb, 128 + 224 * cr], axis=-1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def to_rgb(yuv: np.ndarray) -> np.ndarray:
    """The inverse of to_yuv: (..., 3) uint8 Y'CbCr -> (..., 3) float RGB 0..255 (tests read frames with it)."""
    v = np.asarray(yuv, dtype=float)
    y = (v[..., 0] - 16) / 219
    cb = (v[..., 1] - 128) / 224
    cr = (v[..., 2] - 128) / 224
    r = y + 2 * (1 - KR) * cr
    b = y + 2 * (1 - KB) * cb
    g = (y - KR * r - KB * b) / (1 - KR - KB)
    return np.clip(np.stack([r, g, b], axis=-1) * 255, 0, 255)


class Palette(Settings):
    """Colours as RGB triples; the hands' colours are their notes at full velocity."""

    right_hand: RGB = (72, 201, 112)  # green, as most piano-tutorial channels
    left_hand: RGB = (66, 135, 245)  # blue
    background: RGB = (22, 22, 28)
    octave_line: RGB = (40, 40, 50)  # a faint line above every C
    bar_line: RGB = (70, 70, 84)  # the song's bars, falling with the notes
    white_key: RGB = (236, 236, 232)
    key_gap: RGB = (120, 120, 120)
    black_key: RGB = (24, 24, 24)
    felt: RGB = (150, 30, 40)  # the red strip above the keys
    pedal_up: RGB = (40, 40, 46)
    pedal_down: RGB = (235, 190, 70)
    # a note at velocity v is drawn at (dimmest + (1 - dimmest) * v / 127) of its hand's colour
    dimmest: float = Field(0.45, ge=0.0, le=1.0)

    def note_colours(self, hand: np.ndarray, velocity: np.ndarray) -> np.ndarray:
        """(n,) hands (0 right, 1 left) and velocities -> (n, 3) RGB."""
        colours = np.array([self.right_hand, self.left_hand], dtype=float)[np.asarray(hand, dtype=int)]
        brightness = self.dimmest + (1 - self.dimmest) * np.asarray(velocity, dtype=float)[:, None] / 127
        return colours * brightness
