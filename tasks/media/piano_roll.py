"""A candidate as a small piano-roll picture for the review page: time across, the 88 keys up, the
two hands in the falling-notes video's colours, faint lines where the MIDI's bars start.

One pixel row per key (88 rows) and the whole cover across `width` columns: enough to see at a
glance a cover that is one hand, one register, a wall of notes, or a steady two-hand texture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from wand.image import Image

from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.media.falling_notes.colours import Palette
from covermill.tasks.media.falling_notes.keyboard import HIGHEST, KEYS
from covermill.tasks.media.falling_notes.timeline import NoteTimeline

ROLL_WIDTH = 360
MIN_BAR_SPACING = 6  # pixels: closer bar lines are thinned to every 2nd, 4th, ... bar
BACKGROUND = (250, 250, 252)
BAR_LINE = (205, 205, 215)
C_LINE = (236, 236, 242)  # a faint row at every C, to read the register


def piano_roll(timeline: NoteTimeline, width: int = ROLL_WIDTH, palette: Palette | None = None) -> np.ndarray:
    """(88, width, 3) uint8 RGB: row 0 is C8, row 87 A0; column x covers [x, x+1) * end_time / width seconds."""
    palette = palette or Palette()
    picture = np.empty((KEYS, width, 3), dtype=np.uint8)
    picture[:] = BACKGROUND
    rows = np.arange(KEYS)
    picture[rows[(HIGHEST - rows) % 12 == 0]] = C_LINE
    length = max(timeline.end_time, 1e-3)
    scale = width / length
    bars = timeline.bars[timeline.bars < length]
    if len(bars) > 1:
        spacing = np.median(np.diff(bars)) * scale
        step = 1
        while spacing * step < MIN_BAR_SPACING:
            step *= 2
        bars = bars[::step]
    picture[:, np.clip((bars * scale).astype(int), 0, width - 1)] = BAR_LINE
    colours = np.array([palette.right_hand, palette.left_hand], dtype=np.uint8)
    x0 = np.clip((timeline.start * scale).astype(int), 0, width - 1)
    x1 = np.maximum(x0 + 1, np.clip(np.ceil(timeline.end * scale).astype(int), 1, width))
    rows = HIGHEST - timeline.pitch
    for row, a, b, hand in zip(rows.tolist(), x0.tolist(), x1.tolist(), timeline.hand.tolist()):
        picture[row, a:b] = colours[hand]
    return picture


def write_piano_roll(midi: Path, target: Path, width: int = ROLL_WIDTH) -> Path:
    """`target` (PNG) from the MIDI file, atomically."""
    with Image.from_array(piano_roll(NoteTimeline.read(midi), width)) as image, atomic_output(Path(target)) as tmp:
        image.format = "png"
        image.save(filename=str(tmp))
    return Path(target)


def fresh_piano_roll(midi: Path, target: Path) -> Path | None:
    """The roll of `midi` at `target`, drawn again only when missing or older than the MIDI; None
    when the MIDI is missing or unreadable (the page then shows no picture)."""
    midi, target = Path(midi), Path(target)
    if not midi.is_file():
        return None
    if target.is_file() and target.stat().st_mtime >= midi.stat().st_mtime:
        return target
    try:
        return write_piano_roll(midi, target)
    except (OSError, ValueError, EOFError, IndexError, KeyError):  # pretty_midi's ways of refusing a file
        return None
