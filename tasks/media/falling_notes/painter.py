"""One frame of the falling-notes video, drawn with numpy straight into a yuv420p buffer.

From the top: the fall area (notes fall at a constant speed and reach the keyboard exactly at
their onset; a bar's length is the note's duration), a felt strip, the 88 keys (a key lights in its
hand's colour while its note sounds), and a pedal strip lit while the sustain pedal is down. Over
the first seconds the intro card (the thumbnail, with the title) covers the frame and fades out.

Everything that never changes is drawn once into `background`; a frame is a copy of it with the
moving parts drawn on top, so a frame costs about a millisecond plus one slice per visible note.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from covermill.tasks.media.falling_notes.colours import Palette, to_rgb, to_yuv
from covermill.tasks.media.falling_notes.keyboard import BLACK_LENGTH, LOWEST, Keyboard
from covermill.tasks.media.falling_notes.timeline import NoteTimeline


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


@dataclass(frozen=True)
class Layout:
    """Rows of a `width` x `height` frame (all even, so the half-size chroma planes line up)."""

    width: int
    height: int
    fall_bottom: int  # notes meet the keys here: the felt strip's top row
    keys_top: int
    black_bottom: int
    keys_bottom: int  # the pedal strip from here to the bottom

    @classmethod
    def of(cls, width: int, height: int) -> Layout:
        if width % 2 or height % 2:
            raise ValueError(f"a yuv420p frame needs an even width and height, not {width}x{height}")
        pedal = _even(height * 0.012)
        keys = _even(height * 0.15)
        felt = _even(height * 0.006)
        keys_bottom = height - pedal
        keys_top = keys_bottom - keys
        return cls(width, height, keys_top - felt, keys_top, keys_top + _even(keys * BLACK_LENGTH), keys_bottom)


class Frame:
    """A yuv420p frame buffer: `data` is what FFmpeg reads; y, u, v are views of its planes."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.data = np.empty(width * height * 3 // 2, dtype=np.uint8)
        luma, chroma = width * height, (width // 2) * (height // 2)
        self.y = self.data[:luma].reshape(height, width)
        self.u = self.data[luma:luma + chroma].reshape(height // 2, width // 2)
        self.v = self.data[luma + chroma:].reshape(height // 2, width // 2)

    def fill(self, y0: int, y1: int, x0: int, x1: int, yuv: np.ndarray) -> None:
        """Paint rows y0..y1 and columns x0..x1 (exclusive ends) one colour; chroma covers the pixel
        pairs the rectangle touches."""
        if y1 <= y0 or x1 <= x0:
            return
        self.y[y0:y1, x0:x1] = yuv[0]
        cy0, cy1, cx0, cx1 = y0 // 2, (y1 + 1) // 2, x0 // 2, (x1 + 1) // 2
        self.u[cy0:cy1, cx0:cx1] = yuv[1]
        self.v[cy0:cy1, cx0:cx1] = yuv[2]

    def rgb(self) -> np.ndarray:
        """(height, width, 3) RGB of the frame (upsampled chroma): for tests and pictures."""
        u = self.u.repeat(2, axis=0).repeat(2, axis=1)
        v = self.v.repeat(2, axis=0).repeat(2, axis=1)
        return to_rgb(np.stack([self.y, u, v], axis=-1))


class FramePainter:
    """Draws the frame at any time `t` (seconds) of a timeline.

    `card` is the intro card as a yuv420p buffer of the frame's size (or None), shown fully for
    `intro_seconds - fade_seconds` and faded out over the last `fade_seconds`."""

    def __init__(self, timeline: NoteTimeline, width: int, height: int, palette: Palette | None = None,
                 fall_seconds: float = 3.0, card: np.ndarray | None = None, intro_seconds: float = 0.0,
                 fade_seconds: float = 1.0):
        self.timeline = timeline
        self.layout = Layout.of(width, height)
        self.keyboard = Keyboard.across(width)
        self.palette = palette or Palette()
        self.pixels_per_second = self.layout.fall_bottom / fall_seconds
        self.fall_seconds = fall_seconds
        self.card = card
        self.intro_seconds = intro_seconds if card is not None else 0.0
        self.fade_seconds = min(fade_seconds, self.intro_seconds)
        self.note_yuv = to_yuv(self.palette.note_colours(timeline.hand, timeline.velocity)) if len(timeline) else np.zeros((0, 3), np.uint8)
        self.colour = {name: to_yuv(np.array(getattr(self.palette, name))) for name in
                       ("background", "octave_line", "bar_line", "white_key", "key_gap", "black_key", "felt", "pedal_up", "pedal_down")}
        self.gap = max(1, height // 360)  # rows left dark between a note and the next on its key
        self.background = Frame(width, height)
        self._draw_background(self.background)

    def _draw_background(self, frame: Frame) -> None:
        lay, keys, c = self.layout, self.keyboard, self.colour
        frame.fill(0, lay.height, 0, lay.width, c["background"])
        for i in np.flatnonzero((np.arange(len(keys.x0)) + LOWEST) % 12 == 0):  # every C
            frame.fill(0, lay.fall_bottom, int(keys.x0[i]), int(keys.x0[i]) + max(1, lay.width // 1280), c["octave_line"])
        frame.fill(lay.fall_bottom, lay.keys_top, 0, lay.width, c["felt"])
        frame.fill(lay.keys_top, lay.keys_bottom, 0, lay.width, c["key_gap"])
        for i in range(len(keys.x0)):
            self._key(frame, i, c["black_key"] if keys.black[i] else c["white_key"])
        frame.fill(lay.keys_bottom, lay.height, 0, lay.width, c["pedal_up"])

    def _key(self, frame: Frame, i: int, yuv: np.ndarray) -> None:
        """Key i (pitch - LOWEST) in one colour; a white key leaves a column of gap at its right."""
        lay, keys = self.layout, self.keyboard
        if keys.black[i]:
            frame.fill(lay.keys_top, lay.black_bottom, int(keys.x0[i]), int(keys.x1[i]), yuv)
            return
        gap = 1 if keys.x1[i] - keys.x0[i] > 3 else 0
        frame.fill(lay.keys_top, lay.black_bottom, int(keys.upper_x0[i]), int(keys.upper_x1[i]) - gap, yuv)
        frame.fill(lay.black_bottom, lay.keys_bottom, int(keys.x0[i]), int(keys.x1[i]) - gap, yuv)

    def paint(self, t: float, frame: Frame) -> Frame:
        """Draw the frame at `t` seconds into `frame` (reused between calls)."""
        np.copyto(frame.data, self.background.data)
        lay, tl = self.layout, self.timeline
        bottom, speed = lay.fall_bottom, self.pixels_per_second
        for bar in tl.bars_between(t, t + self.fall_seconds):
            y = int(round(bottom - (bar - t) * speed))
            frame.fill(max(0, y - 2), y, 0, lay.width, self.colour["bar_line"])
        for n in tl.overlapping(t, t + self.fall_seconds):
            y1 = min(bottom, int(round(bottom - (tl.start[n] - t) * speed)))
            y0 = max(0, int(round(bottom - (tl.end[n] - t) * speed)) + self.gap)
            i = tl.pitch[n] - LOWEST
            x0, x1 = int(self.keyboard.x0[i]), int(self.keyboard.x1[i])
            inset = 1 if x1 - x0 > 4 else 0
            frame.fill(y0, y1, x0 + inset, x1 - inset, self.note_yuv[n])
        for n in tl.sounding(t):
            self._key(frame, int(tl.pitch[n] - LOWEST), self.note_yuv[n])
        if tl.pedal_down(t):
            frame.fill(lay.keys_bottom, lay.height, 0, lay.width, self.colour["pedal_down"])
        if t < self.intro_seconds:
            self._card(t, frame)
        return frame

    def _card(self, t: float, frame: Frame) -> None:
        fading = t - (self.intro_seconds - self.fade_seconds)
        alpha = 256 if fading <= 0 else int(round(256 * (1 - fading / self.fade_seconds)))
        if alpha >= 256:
            np.copyto(frame.data, self.card)
        elif alpha > 0:
            mixed = (self.card.astype(np.uint16) * alpha + frame.data.astype(np.uint16) * (256 - alpha)) >> 8
            np.copyto(frame.data, mixed, casting="unsafe")
