"""Stable Diffusion (diffusers) for thumbnails: several seeds per prompt, each image checked.

The pipeline loads once per process with `AutoPipelineForText2Image.from_pretrained` from a hub id
or a folder. Every seed has its own torch.Generator, so a seed's image is the same whether it ran
alone or in a batch, and halving a batch after an out-of-memory changes no image. An image is
flagged when the pipeline's own safety checker says so, or when the caller's second check does;
the caller decides what to do with flagged ones (never publish them).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, field_validator

from covermill.models import hub
from covermill.models.batching import run_in_batches
from covermill.models.device import Hold, resolve_device, resolve_dtype, usable_cores
from covermill.models.errors import ModelMissing
from covermill.models.options import Device, Dtype, ModelOptions

NAME = "stable-diffusion"
DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
AUTO_BATCH = {"cpu": 1, "cuda": 4}  # images per pipeline call when config leaves it to the device

# A second check: (image, seed) -> None when the image may be published, else the reason.
ImageCheck = Callable[[Any, int], "str | None"]


def _size(value: int) -> int:
    if value < 64 or value % 8:
        raise ValueError(f"must be a multiple of 8 from 64 up, got {value}")
    return value


class StableDiffusionOptions(ModelOptions):
    """thumbnail.stable_diffusion in config.yaml (Stable Diffusion paints thumbnails; it is not a generator)."""

    model: str = DEFAULT_MODEL  # a Hugging Face hub id or a local folder (from save_pretrained)
    revision: str | None = None
    device: Device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    dtype: Dtype = "float16"  # on CUDA; the CPU always runs float32
    scheduler: str | None = None  # a diffusers scheduler class, e.g. DPMSolverMultistepScheduler; null: the model's
    steps: int = Field(25, ge=1)
    guidance: float = 7.5
    # 16:9 near Stable Diffusion 1.5's 512x512 training size; multiples of 8
    width: Annotated[int, AfterValidator(_size)] = 768
    height: Annotated[int, AfterValidator(_size)] = 432
    batch_size: int = Field(0, ge=0)  # images per call, halved on out-of-memory; 0 = 1 on a CPU, 4 on a GPU
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 = every core this process may use

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, scheduler: str | None) -> str | None:
        if scheduler is not None:
            import diffusers  # only when one is named: importing diffusers takes seconds

            if not scheduler.endswith("Scheduler") or not hasattr(diffusers, scheduler):
                raise ValueError(f"must name a diffusers scheduler such as DPMSolverMultistepScheduler, got {scheduler!r}")
        return scheduler


def missing_model_message(model: str, offline: bool | None = None) -> str:
    return hub.missing_message("Stable Diffusion model", model, DEFAULT_MODEL, "stable-diffusion",
                               "thumbnail.stable_diffusion.model", offline)


def find_model_files(model: str, revision: str | None = None) -> Path | None:
    return hub.find_files(model, "model_index.json", revision)


@lru_cache(maxsize=None)
def load_pipeline(model: str, revision: str | None, device: str, dtype: str, scheduler: str | None) -> Any:
    """The text-to-image pipeline from a hub id or a folder, loaded once per process."""
    import diffusers
    import torch
    from diffusers import AutoPipelineForText2Image

    offline = hub.hub_offline()
    try:
        pipeline = AutoPipelineForText2Image.from_pretrained(hub.source(model), revision=revision,
                                                             local_files_only=offline, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise ModelMissing(missing_model_message(model, offline)) from exc
    if scheduler is not None:
        pipeline.scheduler = getattr(diffusers, scheduler).from_config(pipeline.scheduler.config)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


@dataclass
class Drawn:
    """One seed's image and, when it must not be published, why."""

    seed: int
    image: Any  # PIL.Image
    flagged: str | None = None


class ThumbnailPainter:
    """prompt + seeds -> images, each checked; the caller picks the first one not flagged."""

    def __init__(self, options: StableDiffusionOptions):
        import torch

        self.options = options
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(self.device, options.dtype)
        torch.set_num_threads(options.threads or usable_cores())
        self.pipeline = load_pipeline(options.model, options.revision, self.device, self.dtype, options.scheduler)
        self.batch_size = options.batch_size or AUTO_BATCH["cuda" if self.device.startswith("cuda") else "cpu"]

    @property
    def has_safety_checker(self) -> bool:
        return getattr(self.pipeline, "safety_checker", None) is not None

    def __call__(self, prompt: str, negative_prompt: str, seeds: list[int],
                 hold: Hold | None = None,
                 second_check: ImageCheck | None = None,
                 progress: Callable[[str], None] | None = None, until_safe: bool = True) -> list[Drawn]:
        """Checked images in seed order, a batch at a time, until one passes (or every seed when
        not `until_safe`) or the seeds run out."""
        import torch

        hold = hold or nullcontext
        progress = progress or (lambda message: None)

        def run(batch: list[int]) -> list[Drawn]:
            generators = [torch.Generator(self.device).manual_seed(seed) for seed in batch]
            with hold(), torch.no_grad():
                output = self.pipeline(prompt=[prompt] * len(batch), negative_prompt=[negative_prompt] * len(batch),
                                       num_inference_steps=self.options.steps, guidance_scale=self.options.guidance,
                                       width=self.options.width, height=self.options.height, generator=generators)
            nsfw = output.nsfw_content_detected or [False] * len(batch)
            drawn = []
            for seed, image, unsafe in zip(batch, output.images, nsfw):
                reason = "the pipeline's safety checker flagged it" if unsafe else None
                if reason is None and second_check is not None:
                    reason = second_check(image, seed)
                drawn.append(Drawn(seed, image, reason))
                progress(f"thumbnail: seed {seed} " + (f"discarded: {reason}" if reason else "passed"))
            return drawn

        def halved(tried: int, size: int) -> None:
            progress(f"thumbnail: out of memory with {tried} images per call; retrying with {size}")

        tried: list[Drawn] = []
        while len(tried) < len(seeds) and (not until_safe or all(d.flagged for d in tried)):
            chunk = seeds[len(tried): len(tried) + self.batch_size]
            # chunk bound as a default: the call never sees a later iteration's chunk
            drawn, self.batch_size = run_in_batches(len(chunk), self.batch_size, lambda a, b, chunk=chunk: run(chunk[a:b]),
                                                    on_halve=halved)
            tried += drawn
        return tried


def load(options: StableDiffusionOptions | Mapping[str, Any] | None = None) -> ThumbnailPainter:
    """A painter for these options (a mapping is validated; a bad option raises ValidationError)."""
    return ThumbnailPainter(StableDiffusionOptions.coerce(options))


_painters: dict[str, ThumbnailPainter] = {}


def load_cached(options: StableDiffusionOptions | Mapping[str, Any] | None = None) -> ThumbnailPainter:
    """One painter per process for each distinct set of options (the pipeline itself is shared
    between them), so a batch size halved after an out-of-memory stays halved."""
    options = StableDiffusionOptions.coerce(options)
    key = options.model_dump_json()
    if key not in _painters:
        _painters[key] = load(options)
    return _painters[key]
