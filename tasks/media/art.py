"""Background art for a thumbnail until an image model lands: a gradient, soft light spots and a piano
keyboard strip, all derived from the song id so that a song's thumbnail is the same on every run.

It is apart from the lettering and the JPEG output so that a generated picture can replace it alone.
"""

from __future__ import annotations

import hashlib
import math
import random

import numpy as np
from wand.image import Image


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - math.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i], dtype=np.float32)


def _blend_disc(canvas: np.ndarray, cx: float, cy: float, r: float, colour: np.ndarray, alpha: float, softness: float) -> None:
    """Blend a disc into `canvas` in place; softness 1 is a glow fading from the centre, small is a crisp edge."""
    h, w, _ = canvas.shape
    x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 1)
    y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    d = np.sqrt((xs - cx) ** 2 + (ys - cy) ** 2) / r
    edge = np.clip((1.0 - d) / softness, 0.0, 1.0)
    a = (alpha * edge * edge * (3 - 2 * edge))[..., None]
    canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - a) + colour * a


def _blend_keyboard(canvas: np.ndarray) -> None:
    """A translucent strip of piano keys along the bottom edge: 52 white keys, like a real 88-key piano."""
    h, w, _ = canvas.shape
    top = int(h * 0.86)
    key = w / 52
    gap = max(1, round(key * 0.08))
    white, black = np.ones(3, np.float32), np.zeros(3, np.float32)
    strip = canvas[top:]
    for k in range(52):
        x0, x1 = round(k * key) + gap // 2, round((k + 1) * key) - (gap - gap // 2)
        strip[:, x0:x1] = strip[:, x0:x1] * 0.8 + white * 0.2
    black_height = int((h - top) * 0.6)
    # A 88-key piano starts at A0: the black keys sit after white keys A, C, D, F, G of each octave.
    for k in range(51):
        if k % 7 in (0, 2, 3, 5, 6):
            cx = (k + 1) * key
            x0, x1 = round(cx - key * 0.3), round(cx + key * 0.3)
            strip[:black_height, x0:x1] = strip[:black_height, x0:x1] * 0.35 + black * 0.65


def make_background(song_id: str, width: int = 1280, height: int = 720) -> Image:
    """A background that depends only on the song id: a dark two-colour gradient, light spots and piano keys."""
    rng = random.Random(hashlib.sha256(song_id.encode("utf-8")).digest())
    hue = rng.random()
    # Dark, saturated colours keep white lettering readable on every song's background.
    first = _hsv(hue, rng.uniform(0.55, 0.8), rng.uniform(0.22, 0.36))
    second = _hsv((hue + rng.uniform(0.08, 0.3)) % 1.0, rng.uniform(0.6, 0.9), rng.uniform(0.08, 0.2))
    light = _hsv((hue + rng.uniform(-0.12, 0.12)) % 1.0, 0.35, 1.0)

    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    along = (xs / width - 0.5) * math.cos(angle) + (ys / height - 0.5) * math.sin(angle)
    t = np.clip(along / math.sqrt(0.5) + 0.5, 0.0, 1.0)[..., None]
    canvas = first * (1 - t) + second * t

    size = min(width, height)
    for _ in range(rng.randint(3, 5)):  # wide glows
        _blend_disc(canvas, rng.uniform(0, width), rng.uniform(0, height), size * rng.uniform(0.35, 0.7), light, rng.uniform(0.12, 0.22), 1.0)
    for _ in range(rng.randint(6, 11)):  # small bokeh spots with soft edges
        _blend_disc(canvas, rng.uniform(0, width), rng.uniform(0, height * 0.85), size * rng.uniform(0.03, 0.12), light, rng.uniform(0.06, 0.16), 0.15)

    # Darken the corners so the eye goes to the title.
    r2 = ((xs / width - 0.5) ** 2 + (ys / height - 0.5) ** 2)[..., None]
    canvas *= 1.0 - 0.6 * r2
    _blend_keyboard(canvas)

    pixels = (np.clip(canvas, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return Image.from_array(np.ascontiguousarray(pixels), channel_map="RGB")
