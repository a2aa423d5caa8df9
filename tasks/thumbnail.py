"""Thumbnail stage: a 1280x720 JPEG with the song's title and artist over a background made from the song id.

The background is tasks/thumbnail_art.py, the lettering tasks/text_overlay.py; this module puts
them together and writes a JPEG YouTube accepts.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from wand.image import Image

from covermill.tasks.atomic import atomic_output
from covermill.tasks.errors import CovermillError
from covermill.tasks.layout import SongFolder
from covermill.tasks.records import Song
from covermill.tasks.stage import stage
from covermill.tasks.text_overlay import OverlaySettings, overlay_text
from covermill.tasks.thumbnail_art import make_background


class ThumbnailSettings(OverlaySettings):
    width: int = Field(1280, ge=320)
    height: int = Field(720, ge=180)
    jpeg_quality: int = Field(92, ge=30, le=100)  # the first try; lowered until the file fits max_bytes
    max_bytes: int = Field(2_000_000, gt=0)  # YouTube refuses thumbnails over 2 MB


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
