"""Thumbnail stage: a 1280x720 JPEG with the song's title and artist over a picture.

The picture is Stable Diffusion's (tasks/media/picture.py) when `thumbnail.generator:
stable-diffusion` and a seed's image passes the safety checks, else the procedural art made from
the song id (tasks/media/art.py); the lettering is tasks/media/lettering.py. This module puts them
together, writes a JPEG YouTube accepts, and records where the picture came from in thumbnail.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from wand.image import Image

from covermill.models.device import Hold
from covermill.models.stable_diffusion import StableDiffusionOptions
from covermill.tasks.core.atomic import atomic_output, write_json
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.gpu_slot import GpuSettings
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.records import Song
from covermill.tasks.core.stage_task import stage_logger, stage_task
from covermill.tasks.media.art import make_background
from covermill.tasks.media.lettering import OverlaySettings, overlay_text
from covermill.tasks.media.picture import PROCEDURAL, ThumbnailArt, fill, load_image_check, paint, prompts


class ThumbnailSettings(OverlaySettings):
    width: int = Field(1280, ge=320)
    height: int = Field(720, ge=180)
    jpeg_quality: int = Field(92, ge=30, le=100)  # the first try; lowered until the file fits max_bytes
    max_bytes: int = Field(2_000_000, gt=0)  # YouTube refuses thumbnails over 2 MB
    generator: Literal["procedural", "stable-diffusion"] = PROCEDURAL
    stable_diffusion: StableDiffusionOptions = StableDiffusionOptions()  # see models/stable_diffusion.py
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3], min_length=1)  # tried in order until one is safe
    prompt_template: str = "thumbnail_prompt.j2"
    negative_prompt_template: str = "thumbnail_negative.j2"
    templates_dir: Path | None = None  # a folder whose templates take precedence over covermill's own
    image_check: str | None = None  # a second safety check, package.module:function(image, seed) -> reason or None


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


def picture_or_art(song: Song, settings: ThumbnailSettings, hold: Hold | None = None) -> tuple[Image, ThumbnailArt]:
    """Stable Diffusion's picture when configured and safe, else the procedural art, with the reason."""
    if settings.generator == PROCEDURAL:
        return make_background(song.id, settings.width, settings.height), ThumbnailArt(art=PROCEDURAL)
    prompt, negative = prompts(song, settings.templates_dir, settings.prompt_template, settings.negative_prompt_template)
    picture, art = paint(song, settings.stable_diffusion, settings.seeds, prompt, negative,
                         load_image_check(settings.image_check), hold)
    if picture is None:
        stage_logger("thumbnail").warning("thumbnail: procedural art instead of Stable Diffusion: %s", art.reason)
        return make_background(song.id, settings.width, settings.height), art
    return fill(picture, settings.width, settings.height), art


def make_thumbnail(song: Song, target: Path, settings: ThumbnailSettings | None = None, hold: Hold | None = None) -> Path:
    """Write the song's thumbnail JPEG to `target`, and where its picture came from to `target`.json."""
    settings = settings or ThumbnailSettings()
    image, art = picture_or_art(song, settings, hold)
    with image:
        overlay_text(image, song.title, song.artist, settings)
        blob = encode_jpeg(image, settings.jpeg_quality, settings.max_bytes)
    with atomic_output(target) as tmp:
        tmp.write_bytes(blob)
    write_json(Path(target).with_suffix(".json"), art.model_dump(mode="json"))
    return Path(target)


def make_song_thumbnail(song: Song, out_dir: Path, settings: ThumbnailSettings, gpu: GpuSettings | None = None) -> Path:
    """The song's thumbnail; whether an existing one is stale is the ledger's call."""
    return make_thumbnail(song, SongFolder(out_dir, song.id).thumbnail, settings, (gpu or GpuSettings(limit=None)).holder())


make_thumbnail_task = stage_task("thumbnail")(make_song_thumbnail)
