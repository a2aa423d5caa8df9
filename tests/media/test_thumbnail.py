"""Thumbnail: size and format, fitted lettering, glyphs for Japanese, and untrusted titles drawn literally."""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from wand.color import Color
from wand.drawing import Drawing
from wand.image import Image

from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.records import Song
from covermill.tasks.media.art import make_background
from covermill.tasks.media.fonts import font_for
from covermill.tasks.media.lettering import overlay_text
from covermill.tasks.media.thumbnail import ThumbnailSettings, make_thumbnail, make_thumbnail_task

W, H = 1280, 720
PROBE_W = 2600  # wide enough that every literal-text probe stays on one line at full size
BACKGROUND = "#203040"
NO_LABEL = ThumbnailSettings(label="")
LATIN_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def song(song_id: str = "0123456789abcdef", title: str = "Yesterday", artist: str = "The Beatles") -> Song:
    return Song(id=song_id, source="/music/x.ogg", source_id="file:x", title=title, artist=artist,
                duration=25.0, original=Path("/music/x.ogg"), audio=Path("/music/x.wav"))


def pixels(image: Image) -> np.ndarray:
    return np.array(image)[..., :3].astype(np.int16)


def lettered(title: str, artist: str = "", settings: ThumbnailSettings = NO_LABEL, width: int = W):
    """(pixels, layout) of the overlay on a plain background, where only the lettering varies."""
    with Image(width=width, height=H, background=Color(BACKGROUND)) as image:
        layout = overlay_text(image, title, artist, settings)
        return pixels(image), layout


def white_width(rgb: np.ndarray, top: float, bottom: float) -> int:
    """Width of the white title fill between two rows (outline, shadow and artist colour are not white)."""
    band = rgb[max(0, int(top)):int(bottom) + 1]
    xs = np.nonzero((band > 200).all(axis=2).any(axis=0))[0]
    return int(xs.max() - xs.min() + 1) if len(xs) else 0


def text_width(text: str, font: str, size: float) -> float:
    with Image(width=1, height=1) as image, Drawing() as drawing:
        drawing.font, drawing.font_size = font, size
        return drawing.get_font_metrics(image, text).text_width


def assert_drawn_literally(title: str, expanded: str) -> None:
    """Each drawn title line is as wide as the literal text, not as what ImageMagick might expand it to."""
    rgb, layout = lettered(title, width=PROBE_W)
    assert [line.text for line in layout.title] == [title]
    line = layout.title[0]
    drawn = white_width(rgb, line.baseline - line.ascender, line.baseline - line.descender)
    literal = text_width(title, line.font, line.size)
    other = text_width(expanded, line.font, line.size)
    tolerance = 0.04 * literal + 4  # side bearings: ink is a little narrower than the advance
    assert abs(other - literal) > 2 * tolerance, "the probe must tell the two apart"
    assert abs(drawn - literal) <= tolerance, (drawn, literal, other)


@pytest.fixture
def secret_file():
    """A file in /tmp (short name, so the '@' title fits one line) with long, distinctive contents."""
    handle, name = tempfile.mkstemp(prefix="cm", suffix=".txt", dir="/tmp")
    contents = "THE CONTENTS OF THIS FILE MUST NEVER APPEAR ON A THUMBNAIL " * 3
    with os.fdopen(handle, "w") as f:
        f.write(contents)
    yield Path(name), contents
    Path(name).unlink(missing_ok=True)


@pytest.mark.parametrize("title,artist", [("Yesterday", "The Beatles"), ("桜の季節", "いきものがかり"), ("Instrumental", "")])
def test_thumbnail_is_a_1280x720_jpeg_under_youtubes_limit(tmp_path, title, artist):
    target = make_thumbnail(song(title=title, artist=artist), tmp_path / "thumbnail.jpg", ThumbnailSettings())
    assert target.read_bytes()[:3] == b"\xff\xd8\xff"
    assert 20_000 < target.stat().st_size < 2_000_000
    with Image(filename=str(target)) as image:
        assert image.format == "JPEG"
        assert image.size == (W, H)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thumbnail.jpg", "thumbnail.json"]  # no temporary left behind


def test_jpeg_quality_drops_until_the_file_fits(tmp_path):
    full = make_thumbnail(song(), tmp_path / "full.jpg", ThumbnailSettings(jpeg_quality=100)).stat().st_size
    limit = int(full * 0.5)
    small = make_thumbnail(song(), tmp_path / "small.jpg", ThumbnailSettings(jpeg_quality=100, max_bytes=limit))
    assert small.stat().st_size <= limit
    with pytest.raises(CovermillError, match="max_bytes"):
        make_thumbnail(song(), tmp_path / "tiny.jpg", ThumbnailSettings(max_bytes=2_000))
    assert not (tmp_path / "tiny.jpg").exists()


def test_different_songs_get_different_backgrounds_and_the_same_song_the_same():
    with make_background("aaaa", W, H) as a, make_background("aaaa", W, H) as again, make_background("bbbb", W, H) as b:
        assert a.size == b.size == (W, H)
        assert np.array_equal(pixels(a), pixels(again))
        assert np.abs(pixels(a) - pixels(b)).mean() > 10
        assert pixels(a).std() > 5  # a gradient and shapes, not a flat fill


def test_a_200_character_title_fits_inside_the_image():
    title = " ".join(itertools.islice(itertools.cycle("Moonlight Sonata Adagio sostenuto Op 27 No 2".split()), 60))[:200]
    assert len(title) == 200
    settings = ThumbnailSettings()
    with_title, layout = lettered(title, "Ludwig van Beethoven", settings)
    without, _ = lettered("", "Ludwig van Beethoven", settings)
    assert 1 <= len(layout.title) <= 2
    for line in layout.title:
        assert line.x > 0 and line.x + line.width < W
    ys, xs = np.nonzero(np.abs(with_title - without).max(axis=2) > 30)
    assert len(xs) > 5_000  # the title really was drawn
    assert xs.min() > 10 and xs.max() < W - 10 and ys.min() > 10 and ys.max() < H - 10
    assert layout.title[-1].text.endswith("\u2026")  # what does not fit is cut visibly


def test_short_titles_are_big_and_long_ones_wrap_onto_two_lines():
    _, short = lettered("Yesterday")
    _, medium = lettered("Bohemian Rhapsody (Live at Wembley Stadium 1986)")
    assert len(short.title) == 1 and short.title[0].size >= H * 0.14
    assert len(medium.title) == 2 and medium.title[0].size > H * 0.07


def test_an_empty_artist_leaves_the_title_centred_alone():
    alone, layout = lettered("Yesterday", "")
    with_artist, layout_with = lettered("Yesterday", "The Beatles")
    assert layout.artist is None and layout_with.artist is not None
    line = layout.title[0]
    middle = (line.baseline - line.ascender + line.baseline - line.descender) / 2
    assert abs(middle - H * 0.47) < H * 0.03
    # All the ink is the title's (with its outline and shadow): no artist line, no stray text.
    with Image(width=W, height=H, background=Color(BACKGROUND)) as plain:
        ys, _ = np.nonzero(np.abs(alone - pixels(plain)).max(axis=2) > 30)
    assert ys.min() >= line.baseline - line.ascender - 10 and ys.max() <= line.baseline - line.descender + 20
    assert not np.array_equal(alone, with_artist)


def glyph(char: str, font: str) -> np.ndarray:
    with Image(width=120, height=120, background=Color("white")) as image, Drawing() as drawing:
        drawing.font, drawing.font_size, drawing.fill_color = font, 80, Color("black")
        drawing.text(10, 95, char)
        drawing(image)
        return pixels(image)


def test_a_japanese_title_is_drawn_with_real_glyphs_not_boxes():
    title = "桜の季節"
    font = font_for(title)
    assert font is not None and "CJK" in font
    _, layout = lettered(title, "いきものがかり")
    assert layout.title[0].font == font and layout.artist.font == font_for("いきものがかり")
    # Missing glyphs all render as the same box: with the Latin font every character looks alike,
    # with the chosen font each one is different.
    tofu = [glyph(c, LATIN_FONT) for c in title]
    real = [glyph(c, font) for c in title]
    assert all(np.array_equal(tofu[0], t) for t in tofu[1:])
    assert all(np.abs(a - b).sum() > 100_000 for a, b in itertools.combinations(real, 2))


def test_font_for_picks_latin_and_cjk_fonts_that_have_the_glyphs():
    assert font_for("Piano Cover") == LATIN_FONT
    assert "NotoSansCJK" in font_for("ピアノ") and "NotoSansCJK" in font_for("한국어 노래")
    assert font_for("Ünïcødé Привет") == LATIN_FONT


def test_a_title_no_one_font_covers_gets_the_font_of_its_cjk_characters():
    """Japanese beside Arabic: no installed font has both; the CJK font draws the Japanese (and the
    Cyrillic), where the Latin one would draw the Japanese as boxes."""
    title = "桜の季節 Привет مرحبا"
    assert font_for(title) is None
    _, layout = lettered(title)
    assert layout.title[0].font == font_for("桜の季節")


def test_an_at_file_title_is_drawn_literally_and_never_reads_the_file(secret_file):
    path, contents = secret_file
    title = f"@{path}"
    assert_drawn_literally(title, contents)
    drawn_with_file, _ = lettered(title)
    path.unlink()
    drawn_without_file, _ = lettered(title)
    assert np.array_equal(drawn_with_file, drawn_without_file)


@pytest.mark.parametrize("title,expanded", [
    ("%w x %h 100%", f"{PROBE_W} x {H} 100%"),
    ("%[fx:1+1] %[filename] %%", "2  %"),
    ("AT&amp;T \\n &lt;3", "AT&T \n <3"),
])
def test_percent_escapes_and_entities_are_drawn_literally(title, expanded):
    assert_drawn_literally(title, expanded)


def test_the_task_writes_the_song_folder_thumbnail_replacing_a_stale_one(tmp_path):
    settings = ThumbnailSettings()
    made = make_thumbnail_task.fn(song(), tmp_path, settings)
    assert made == SongFolder(tmp_path, song().id).thumbnail and made.exists()
    made.write_bytes(b"stale")  # the flow's ledger decided it must be made again
    assert make_thumbnail_task.fn(song(), tmp_path, settings).read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG again


def test_a_missing_configured_font_is_one_sentence(tmp_path):
    with pytest.raises(CovermillError, match="thumbnail.font"):
        make_thumbnail(song(), tmp_path / "t.jpg", ThumbnailSettings(font="/nonexistent/font.ttf"))
