"""Thumbnail stage: a 1280x720 JPEG with the song's title and artist over a background made from the song id.

Until an image model lands, the background is generated (a gradient, soft light spots and a piano
keyboard strip, all derived from the song id). `overlay_text` is separate so that a generated
picture can get the same lettering.

Title text is untrusted data. ImageMagick expands `@file` and `%` escapes in some entry points
(`label:`, `caption:`, the CLI's `-annotate`, property interpolation), so text reaches it only through
the drawing wand's text primitive (`Drawing.text`, i.e. DrawAnnotation), which on ImageMagick
6.9.11 draws its string literally: `@/etc/passwd`, `%w`, `%[fx:..]`, `\\n` and `&amp;` come out
as typed (tests/test_thumbnail.py proves it on the installed version). Font metrics come from
`get_font_metrics` (MagickQueryFontMetrics), which is literal as well.
"""

from __future__ import annotations

import hashlib
import math
import random
import subprocess
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import Field
from wand.color import Color
from wand.drawing import Drawing
from wand.image import Image

from covermill.tasks.atomic import atomic_output
from covermill.tasks.errors import CovermillError
from covermill.tasks.layout import SongFolder
from covermill.tasks.records import Song
from covermill.tasks.settings import Settings
from covermill.tasks.stage import stage

LATIN_FAMILY = "DejaVu Sans"
CJK_FAMILY = "Noto Sans CJK JP"
# Where Debian's fonts-dejavu-core and fonts-noto-cjk put them, for systems without fc-match.
KNOWN_FONT_FILES = {
    LATIN_FAMILY: ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",),
    CJK_FAMILY: (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
        "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
    ),
}

# Han, kana, Hangul and the CJK punctuation and full-width forms: text DejaVu has no glyphs for.
CJK_RANGES = (
    (0x1100, 0x11FF), (0x2E80, 0x2FDF), (0x3000, 0x30FF), (0x3130, 0x318F), (0x31C0, 0x31FF),
    (0x3200, 0x4DBF), (0x4E00, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xF900, 0xFAFF),
    (0xFE30, 0xFE4F), (0xFF00, 0xFFEF), (0x20000, 0x3FFFF),
)
ELLIPSIS = "\u2026"


class ThumbnailSettings(Settings):
    width: int = Field(1280, ge=320)
    height: int = Field(720, ge=180)
    font: str | None = None  # a font file (or a name in `convert -list font`) for all text; None picks per text with font_for
    label: str = "PIANO COVER"  # the small badge in the corner; "" leaves it out
    jpeg_quality: int = Field(92, ge=30, le=100)  # the first try; lowered until the file fits max_bytes
    max_bytes: int = Field(2_000_000, gt=0)  # YouTube refuses thumbnails over 2 MB


# ---------------------------------------------------------------------------------------------
# Fonts


def is_cjk(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in CJK_RANGES)


def _charset(text: str) -> str:
    """The text's code points as a fontconfig charset ('41-43 3042'), so fc-match prefers a font with those glyphs."""
    codes = sorted({ord(c) for c in text if c.isprintable() and not c.isspace()})
    ranges: list[list[int]] = []
    for code in codes:
        if ranges and code == ranges[-1][1] + 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return " ".join(f"{a:x}" if a == b else f"{a:x}-{b:x}" for a, b in ranges)


def _fc(*args: str) -> list[str] | None:
    """Lines printed by a fontconfig tool, or None when fontconfig is not installed."""
    try:
        result = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [line for line in result.stdout.splitlines() if line.strip()] if result.returncode == 0 else None


def _known_font(family: str) -> str | None:
    return next((path for path in KNOWN_FONT_FILES[family] if Path(path).is_file()), None)


@lru_cache(maxsize=512)
def font_for(text: str) -> str | None:
    """A bold font file with glyphs for every character of `text` (DejaVu Sans Bold for Latin, Noto Sans
    CJK Bold for CJK), or None when no installed font has them all."""
    family = CJK_FAMILY if any(is_cjk(c) for c in text) else LATIN_FAMILY
    charset = _charset(text)
    # fontconfig ranks glyph coverage above the family name, so a title in a script the preferred
    # family lacks still gets a font that has it.
    matched = _fc("fc-match", "--format=%{file}\n", f"{family}:style=Bold" + (f":charset={charset}" if charset else ""))
    if matched is None:  # no fontconfig: trust the known files of the preferred family
        return _known_font(family)
    best = matched[0] if matched and Path(matched[0]).is_file() else None
    if not charset:
        return best
    # fc-match always answers; only fonts fc-list finds for the charset really have every glyph.
    covering = [line.split("|", 1) for line in _fc("fc-list", "--format=%{file}|%{style}\n", f":charset={charset}") or []]
    files = [entry[0] for entry in covering if Path(entry[0]).is_file()]
    if best in files:
        return best
    bold = [entry[0] for entry in covering if len(entry) == 2 and "Bold" in entry[1] and entry[0] in files]
    return (bold or files or [None])[0]


def _font(text: str, settings: ThumbnailSettings) -> str:
    """The font to draw `text` with: the configured one, else one with its glyphs, else any we can find."""
    if settings.font is not None:
        if "/" in settings.font and not Path(settings.font).is_file():
            raise CovermillError(f"{settings.font}: the thumbnail font file does not exist; fix thumbnail.font in config.yaml.")
        return settings.font
    # A script no installed font covers still gets drawn (some boxes beat no thumbnail).
    found = font_for(text) or font_for("") or _known_font(LATIN_FAMILY) or _known_font(CJK_FAMILY)
    if found is None:
        raise CovermillError(
            "No font for the thumbnail text was found; install fonts-dejavu-core and fonts-noto-cjk, or set thumbnail.font to a font file."
        )
    return found


# ---------------------------------------------------------------------------------------------
# Background


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


# ---------------------------------------------------------------------------------------------
# Text layout


@dataclass(frozen=True)
class TextLine:
    """One line of lettering as drawn: `x` is its left edge, `baseline` its baseline, in pixels."""

    text: str
    font: str
    size: float
    x: int
    baseline: int
    width: float
    ascender: float
    descender: float


@dataclass(frozen=True)
class TextLayout:
    title: tuple[TextLine, ...]
    artist: TextLine | None
    label: TextLine | None


class _Metrics:
    """Font metrics through MagickQueryFontMetrics (literal text), with a scratch image and a cache."""

    def __init__(self) -> None:
        self._image = Image(width=1, height=1)
        self._cache: dict[tuple[str, float, str], tuple[float, float, float]] = {}

    def close(self) -> None:
        self._image.close()

    def measure(self, text: str, font: str, size: float) -> tuple[float, float, float]:
        """(width, ascender, descender) of one line."""
        key = (font, size, text)
        if key not in self._cache:
            with Drawing() as drawing:
                drawing.font = font
                drawing.font_size = size
                m = drawing.get_font_metrics(self._image, text or " ")
            self._cache[key] = (m.text_width if text else 0.0, m.ascender, m.descender)
        return self._cache[key]

    def width(self, text: str, font: str, size: float) -> float:
        return self.measure(text, font, size)[0]


def _clean(text: str) -> str:
    """One line of printable text: newlines and tabs become spaces, runs of spaces collapse."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def _segments(text: str) -> list[str]:
    """Pieces a line may break between: words (with their trailing space) and single CJK characters."""
    pieces: list[str] = []
    current = ""
    for char in text:
        if char == " ":
            pieces.append(current + char)
            current = ""
        elif is_cjk(char):
            if current:
                pieces.append(current)
            pieces.append(char)
            current = ""
        else:
            current += char
    if current:
        pieces.append(current)
    return pieces if len(pieces) > 1 else list(text)


def _ellipsize(metrics: _Metrics, text: str, font: str, size: float, max_width: float) -> str:
    if metrics.width(text, font, size) <= max_width:
        return text
    low, high = 0, len(text)  # the longest prefix that fits with the ellipsis, by bisection
    while low < high:
        mid = (low + high + 1) // 2
        if metrics.width(text[:mid].rstrip() + ELLIPSIS, font, size) <= max_width:
            low = mid
        else:
            high = mid - 1
    return text[:low].rstrip() + ELLIPSIS


def _fit_size(metrics: _Metrics, lines: list[str], font: str, max_width: float, max_size: float) -> float:
    """The largest size (<= max_size) at which every line fits; widths scale with size, then checked exactly."""
    reference = 100.0
    widest = max(metrics.width(line, font, reference) for line in lines)
    size = max_size if widest <= 0 else min(max_size, max_width / widest * reference)
    size = math.floor(size)
    # Hinting makes widths not quite proportional: step down until the real metrics agree.
    while size > 1 and max(metrics.width(line, font, size) for line in lines) > max_width:
        size -= 1
    return size


def _wrap(metrics: _Metrics, text: str, font: str, max_width: float, max_size: float, min_size: float) -> tuple[list[str], float]:
    """Lines (one or two) and the size that shows `text` largest; cut with an ellipsis when it cannot fit at min_size."""
    one_size = _fit_size(metrics, [text], font, max_width, max_size)
    pieces = _segments(text)
    if one_size >= max_size * 0.8 or len(pieces) < 2:
        if one_size >= min_size:
            return [text], one_size
        return [_ellipsize(metrics, text, font, min_size, max_width)], min_size

    def split(k: int) -> list[str]:
        return ["".join(pieces[:k]).strip(), "".join(pieces[k:]).strip()]

    balanced = min(
        (split(k) for k in range(1, len(pieces))),
        key=lambda lines: max(metrics.width(line, font, 100.0) for line in lines),
    )
    two_size = _fit_size(metrics, balanced, font, max_width, max_size)
    # Two lines cost height; they are worth it only when the letters get clearly bigger.
    if one_size >= min_size and two_size < one_size * 1.15:
        return [text], one_size
    if two_size >= min_size:
        return balanced, two_size
    # Too long even on two lines: fill the first line, cut the second.
    k = 1
    while k < len(pieces) - 1 and metrics.width(split(k + 1)[0], font, min_size) <= max_width:
        k += 1
    return [_ellipsize(metrics, line, font, min_size, max_width) for line in split(k)], min_size


def _line(metrics: _Metrics, text: str, font: str, size: float, x: int, baseline: int) -> TextLine:
    width, ascender, descender = metrics.measure(text, font, size)
    return TextLine(text, font, size, max(0, x), max(0, baseline), width, ascender, descender)


def layout_text(width: int, height: int, title: str, artist: str, settings: ThumbnailSettings) -> TextLayout:
    """Where the title (one or two lines, fitted), the artist and the label go on a `width` x `height` image."""
    title, artist, label = _clean(title), _clean(artist), _clean(settings.label)
    metrics = _Metrics()
    try:
        margin_x = round(width * 0.06)
        max_width = width - 2 * margin_x

        label_line = None
        if label:
            font = _font(label, settings)
            size = round(height * 0.04)
            text = _ellipsize(metrics, label, font, size, max_width * 0.6)
            _, ascender, _ = metrics.measure(text, font, size)
            label_line = _line(metrics, text, font, size, margin_x + round(size * 0.6), round(height * 0.07 + size * 0.5 + ascender))

        title_lines: list[str] = []
        title_size = 0.0
        title_font = ""
        if title:
            title_font = _font(title, settings)
            title_lines, title_size = _wrap(metrics, title, title_font, max_width, height * 0.15, height * 0.055)

        artist_text, artist_size, artist_font = "", 0.0, ""
        if artist:
            artist_font = _font(artist, settings)
            largest = max(height * 0.045, min(height * 0.075, (title_size or height * 0.12) * 0.6))
            artist_size = _fit_size(metrics, [artist], artist_font, max_width, largest)
            if artist_size < height * 0.04:
                artist_size = round(height * 0.04)
                artist = _ellipsize(metrics, artist, artist_font, artist_size, max_width)
            artist_text = artist

        # Stack title lines and artist, centred a little above the middle (the keys take the bottom).
        rows: list[tuple[str, str, float]] = [(line, title_font, title_size) for line in title_lines]
        if artist_text:
            rows.append((artist_text, artist_font, artist_size))
        heights = []
        for i, (text, font, size) in enumerate(rows):
            _, ascender, descender = metrics.measure(text, font, size)
            gap = size * 0.45 if artist_text and i == len(rows) - 1 and title_lines else size * 0.12
            heights.append((ascender, descender, gap if i else 0.0))
        total = sum(a - d + g for a, d, g in heights)
        top = (height * 0.47) - total / 2
        placed: list[TextLine] = []
        for (text, font, size), (ascender, descender, gap) in zip(rows, heights):
            top += gap
            w = metrics.width(text, font, size)
            placed.append(_line(metrics, text, font, size, round((width - w) / 2), round(top + ascender)))
            top += ascender - descender
        return TextLayout(
            title=tuple(placed[: len(title_lines)]),
            artist=placed[len(title_lines)] if artist_text else None,
            label=label_line,
        )
    finally:
        metrics.close()


# ---------------------------------------------------------------------------------------------
# Drawing


def _draw_text(image: Image, lines: list[TextLine], fill: str, stroke: str | None = None, stroke_ratio: float = 0.0) -> None:
    # Drawing.text draws its string literally (see the module docstring); label: and caption: would not.
    with Drawing() as drawing:
        drawing.text_antialias = True
        drawing.text_encoding = "UTF-8"
        drawing.fill_color = Color(fill)
        if stroke:
            drawing.stroke_color = Color(stroke)
            drawing.stroke_antialias = True
        for line in lines:
            drawing.font = line.font
            drawing.font_size = line.size
            if stroke:
                drawing.stroke_width = max(1.0, line.size * stroke_ratio)
            drawing.text(line.x, line.baseline, line.text)
        drawing(image)


def _soft_shadow(image: Image, lines: list[TextLine]) -> None:
    """A blurred dark copy of the lettering under it, so it reads on light pictures too."""
    w, h = image.width, image.height
    offset = max(2, round(h * 0.005))
    shifted = [replace(line, x=line.x + offset, baseline=line.baseline + offset) for line in lines]
    with Image(width=w, height=h, background=Color("transparent")) as layer:
        _draw_text(layer, shifted, "#000000", "#000000", 0.12)
        # Blurring a quarter-size copy took a third of the time of a full-size blur; a soft shadow loses nothing.
        layer.resize(max(1, w // 4), max(1, h // 4))
        layer.blur(radius=6, sigma=3)
        layer.resize(w, h)
        image.composite(layer, 0, 0, operator="over")


def _draw_label(image: Image, line: TextLine) -> None:
    pad_x, pad_y = line.size * 0.6, line.size * 0.35
    with Drawing() as drawing:
        drawing.fill_color = Color("rgba(255,255,255,0.9)")
        drawing.stroke_color = Color("transparent")
        top = line.baseline - line.ascender - pad_y
        bottom = line.baseline - line.descender + pad_y
        drawing.rectangle(left=line.x - pad_x, top=top, right=line.x + line.width + pad_x, bottom=bottom, radius=(bottom - top) / 2)
        drawing(image)
    _draw_text(image, [line], "#1d1d24")


def overlay_text(image: Image, title: str, artist: str, settings: ThumbnailSettings | None = None) -> TextLayout:
    """Letter `image` in place: the fitted title, the artist under it and the label badge; returns where they went."""
    settings = settings or ThumbnailSettings()
    layout = layout_text(image.width, image.height, title, artist, settings)
    lettering = list(layout.title) + ([layout.artist] if layout.artist else [])
    if lettering:
        _soft_shadow(image, lettering)
        # Stroke first, fill on top: the outline then sits outside the letters instead of eating them.
        _draw_text(image, lettering, "#101014", "#101014", 0.09)
        _draw_text(image, list(layout.title), "#ffffff")
        if layout.artist:
            _draw_text(image, [layout.artist], "#ffe7b3")
    if layout.label:
        _draw_label(image, layout.label)
    return layout


# ---------------------------------------------------------------------------------------------
# Output


def encode_jpeg(image: Image, quality: int, max_bytes: int) -> bytes:
    """The image as a baseline sRGB JPEG, at `quality` or lower until it fits `max_bytes`."""
    with image.clone() as jpeg:
        jpeg.strip()
        jpeg.format = "jpeg"
        jpeg.options["jpeg:sampling-factor"] = "4:2:0"
        q = quality
        while True:
            jpeg.compression_quality = q
            blob = jpeg.make_blob("jpeg")
            if len(blob) <= max_bytes:
                return blob
            if q <= 20:
                raise CovermillError(f"The thumbnail stays over {max_bytes} bytes even at JPEG quality {q}; raise thumbnail.max_bytes or lower its size.")
            q = max(20, q - 8)


def make_thumbnail(song: Song, target: Path, settings: ThumbnailSettings | None = None) -> Path:
    """Write the song's thumbnail JPEG to `target` atomically."""
    settings = settings or ThumbnailSettings()
    with make_background(song.id, settings.width, settings.height) as image:
        overlay_text(image, song.title, song.artist, settings)
        blob = encode_jpeg(image, settings.jpeg_quality, settings.max_bytes)
    with atomic_output(target) as tmp:
        tmp.write_bytes(blob)
    return Path(target)


def make_song_thumbnail(song: Song, out_dir: Path, settings: ThumbnailSettings) -> Path:
    """The song's thumbnail; whether an existing one is stale is the ledger's call."""
    return make_thumbnail(song, SongFolder(out_dir, song.id).thumbnail, settings)


make_thumbnail_task = stage("thumbnail")(make_song_thumbnail)
