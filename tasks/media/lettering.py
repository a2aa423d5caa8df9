"""Lettering for a thumbnail: the song's title and artist fitted over any picture, and the label badge.

It is apart from the background so that a generated picture can get the same lettering, and apart
from the JPEG output so that its settings (font, label) are all it needs to know.

Title text is untrusted data. ImageMagick expands `@file` and `%` escapes in some entry points
(`label:`, `caption:`, the CLI's `-annotate`, property interpolation), so text reaches it only through
the drawing wand's text primitive (`Drawing.text`, i.e. DrawAnnotation), which on ImageMagick
6.9.11 draws its string literally: `@/etc/passwd`, `%w`, `%[fx:..]`, `\\n` and `&amp;` come out
as typed (tests/media/test_thumbnail.py proves it on the installed version). Font metrics come from
`get_font_metrics` (MagickQueryFontMetrics), which is literal as well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from wand.color import Color
from wand.drawing import Drawing
from wand.image import Image

from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.settings import Settings
from covermill.tasks.media.fonts import CJK_FAMILY, LATIN_FAMILY, font_for, is_cjk, known_font

ELLIPSIS = "\u2026"


class OverlaySettings(Settings):
    """The lettering's share of the thumbnail settings (ThumbnailSettings extends it, so config.yaml keeps one section)."""

    font: str | None = None  # a font file (or a name in `convert -list font`) for all text; None picks per text with font_for
    label: str = "PIANO COVER"  # the small badge in the corner; "" leaves it out


# ---------------------------------------------------------------------------------------------
# Fonts


def _font(text: str, settings: OverlaySettings) -> str:
    """The font to draw `text` with: the configured one, else one with its glyphs, else any we can find."""
    if settings.font is not None:
        if "/" in settings.font and not Path(settings.font).is_file():
            raise CovermillError(f"{settings.font}: the thumbnail font file does not exist; fix thumbnail.font in config.yaml.")
        return settings.font
    # A script no installed font covers still gets drawn (some boxes beat no thumbnail). When no one
    # font has every glyph (Japanese beside Arabic), the CJK characters choose: a CJK font has the
    # Latin and Cyrillic letters too, a Latin font no CJK at all.
    cjk = "".join(c for c in text if is_cjk(c))
    found = font_for(text) or (cjk and font_for(cjk)) or font_for("") or known_font(LATIN_FAMILY) or known_font(CJK_FAMILY)
    if found is None:
        raise CovermillError(
            "No font for the thumbnail text was found; install fonts-dejavu-core and fonts-noto-cjk, or set thumbnail.font to a font file."
        )
    return found


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


def layout_text(width: int, height: int, title: str, artist: str, settings: OverlaySettings) -> TextLayout:
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


def overlay_text(image: Image, title: str, artist: str, settings: OverlaySettings | None = None) -> TextLayout:
    """Letter `image` in place: the fitted title, the artist under it and the label badge; returns where they went."""
    settings = settings or OverlaySettings()
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
