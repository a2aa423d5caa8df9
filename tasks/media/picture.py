"""The thumbnail's picture from Stable Diffusion: prompt from templates, seeds until one is safe.

Each seed's image is checked by the pipeline's safety checker and, when config names one, a second
check (`package.module:function(image, seed)` returning None or the reason). A flagged image is
dropped and never written anywhere; when no seed passes, the model is missing, or it runs out of
memory even one image at a time, the caller falls back to the procedural art with the reason.
"""

from __future__ import annotations

import importlib
import io
from pathlib import Path
from typing import Any

from wand.image import Image

from covermill.models import stable_diffusion
from covermill.models.device import Hold
from covermill.models.errors import ModelMissing, OutOfMemory
from covermill.models.stable_diffusion import ImageCheck, StableDiffusionOptions
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.records import Record, Song
from covermill.tasks.core.stage_task import stage_logger
from covermill.tasks.core.templating import render_template, template_environment

PROCEDURAL, STABLE_DIFFUSION = "procedural", "stable-diffusion"


class ThumbnailArt(Record):
    """Where the thumbnail's picture came from, written next to it as thumbnail.json."""

    art: str  # "stable-diffusion" or "procedural"
    seed: int | None = None
    prompt: str = ""
    negative_prompt: str = ""
    reason: str | None = None  # why the procedural art stands in for Stable Diffusion's picture
    discarded: dict[int, str] = {}  # seed -> why its image was not used


def load_image_check(spec: str | None) -> ImageCheck | None:
    """`package.module:function` -> the function (None stays None), with one sentence when wrong."""
    if not spec:
        return None
    module_name, _, function = spec.partition(":")
    try:
        check = getattr(importlib.import_module(module_name), function)
    except (ImportError, AttributeError, ValueError):
        raise CovermillError(f"thumbnail.image_check {spec!r} names no importable function; write it as package.module:function.") from None
    if not callable(check):
        raise CovermillError(f"thumbnail.image_check {spec!r} is not a function.")
    return check


def prompts(song: Song, templates_dir: Path | None, prompt_template: str, negative_template: str) -> tuple[str, str]:
    """(prompt, negative prompt), one line each, from the templates and the song's metadata."""
    env = template_environment(templates_dir, "thumbnail.templates_dir")
    context = {"song": song}
    prompt = render_template(env, prompt_template, context, "thumbnail.prompt_template")
    negative = render_template(env, negative_template, context, "thumbnail.negative_prompt_template")
    return " ".join(prompt.split()), " ".join(negative.split())


def paint(song: Song, options: StableDiffusionOptions, seeds: list[int], prompt: str, negative: str,
          check: ImageCheck | None, hold: Hold | None) -> tuple[Any | None, ThumbnailArt]:
    """(the first safe image or None, what happened)."""
    log = stage_logger("thumbnail")
    art = ThumbnailArt(art=PROCEDURAL, prompt=prompt, negative_prompt=negative)
    try:
        painter = stable_diffusion.load_cached(options)
        if not painter.has_safety_checker and check is None:
            log.warning("thumbnail: the Stable Diffusion pipeline has no safety checker and thumbnail.image_check is "
                        "not set: images are not checked")
        drawn = painter(prompt, negative, seeds, hold=hold, second_check=check, progress=log.info)
    except ModelMissing as exc:
        return None, art.model_copy(update={"reason": str(exc)})
    except OutOfMemory as exc:
        return None, art.model_copy(update={"reason": f"Stable Diffusion: {exc}"})
    discarded = {d.seed: d.flagged for d in drawn if d.flagged}
    safe = next((d for d in drawn if not d.flagged), None)
    if safe is None:
        return None, art.model_copy(update={"discarded": discarded, "reason": f"every seed ({', '.join(map(str, seeds))}) was flagged"})
    return safe.image, art.model_copy(update={"art": STABLE_DIFFUSION, "seed": safe.seed, "discarded": discarded})


def fill(picture: Any, width: int, height: int) -> Image:
    """The picture scaled to cover width x height and cropped about its centre, as a Wand image."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    image = Image(blob=buffer.getvalue(), format="png")
    scale = max(width / image.width, height / image.height)
    image.resize(max(width, round(image.width * scale)), max(height, round(image.height * scale)), filter="lanczos")
    image.crop(width=width, height=height, gravity="center")
    image.page = (width, height, 0, 0)
    return image
