"""`covermill doctor`: each external piece checked, with the fix printed for what is missing."""

from __future__ import annotations

import importlib
import importlib.metadata
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

from covermill.flows.config import CovermillConfig
from covermill.models import registry
from covermill.models.audio import essentia_standard
from covermill.models.generator import Readiness
from covermill.tasks.cover.fluidsynth_library import import_fluidsynth
from covermill.tasks.media.score.engrave import missing_tools

APT = "sudo apt-get install -y"
REINSTALL = "run `make install` (or see the Makefile's install steps)"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def check_ffmpeg(config: CovermillConfig) -> Check:
    found = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool)]
    if len(found) < 2:
        return Check("FFmpeg", False, "ffmpeg/ffprobe not on PATH", f"{APT} ffmpeg")
    line = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    if "libx264" not in encoders:
        return Check("FFmpeg", False, f"{line}, but without libx264", f"{APT} ffmpeg (Debian's build has libx264)")
    return Check("FFmpeg", True, line)


def check_fluidsynth(config: CovermillConfig) -> Check:
    try:
        import_fluidsynth()  # loads libfluidsynth through ctypes
    except (ImportError, OSError) as exc:
        return Check("FluidSynth", False, f"pyfluidsynth cannot load libfluidsynth ({exc})", f"{APT} libfluidsynth3")
    return Check("FluidSynth", True, f"pyfluidsynth {_version('pyfluidsynth')} with libfluidsynth")


def check_lilypond(config: CovermillConfig) -> Check:
    """The score's engraver (musicxml2ly, lilypond and Ghostscript come with Debian's lilypond)."""
    if not config.score.enabled or not config.score.pdf:
        return Check("LilyPond", True, "not needed (score.enabled or score.pdf is false)")
    missing = missing_tools()
    if missing:
        return Check("LilyPond", False, f"{', '.join(missing)} not on PATH: the score gets no PDF (its MusicXML still is made)",
                     f"{APT} lilypond, or set score.pdf: false in config.yaml")
    line = subprocess.run(["lilypond", "--version"], capture_output=True, text=True, timeout=60).stdout.splitlines()[0]
    return Check("LilyPond", True, line)


def check_soundfont(config: CovermillConfig) -> Check:
    path = config.render.soundfont
    if not path.is_file():
        return Check("soundfont", False, f"{path} not found", f"{APT} fluid-soundfont-gm, or set render.soundfont in config.yaml")
    return Check("soundfont", True, f"{path} ({path.stat().st_size / 1e6:.0f} MB)")


def check_imagemagick(config: CovermillConfig) -> Check:
    from covermill.tasks.media.imagemagick import POLICY_FOLDER  # the media package sets the policy first

    try:
        from wand.version import MAGICK_VERSION
    except ImportError as exc:
        return Check("ImageMagick (Wand)", False, f"Wand cannot load MagickWand ({exc})", f"{APT} libmagickwand-dev")
    policy = POLICY_FOLDER / "policy.xml"
    if not policy.is_file():
        return Check("ImageMagick (Wand)", False, f"{MAGICK_VERSION}, but covermill's policy {policy} is missing", "reinstall covermill")
    return Check("ImageMagick (Wand)", True, f"{MAGICK_VERSION}, under covermill's policy (JPEG and PNG only)")


def check_fonts(config: CovermillConfig) -> Check:
    from covermill.tasks.media.fonts import font_for

    latin, japanese = font_for("Piano"), font_for("ピアノ")
    if not latin or not japanese:
        return Check("fonts", False, f"Latin: {latin or 'none'}, CJK: {japanese or 'none'}", f"{APT} fonts-dejavu-core fonts-noto-cjk")
    return Check("fonts", True, f"Latin: {latin}; CJK: {japanese}")


def check_essentia(config: CovermillConfig) -> Check:
    try:
        es = essentia_standard()

        for name in ("HPCP", "ChromaCrossSimilarity", "CoverSongSimilarity"):
            getattr(es, name)
    except (ImportError, AttributeError) as exc:
        return Check("essentia", False, f"essentia unusable ({exc})", "pip install essentia (in the venv; `make install`)")
    return Check("essentia", True, f"essentia {_version('essentia')}")


def _reinstall(entry: registry.Registration) -> str:
    distribution = entry.distribution.split()[0]
    if distribution == registry.OWN_DISTRIBUTION:
        return REINSTALL
    return f"reinstall {distribution} (pip install --force-reinstall {distribution})"


def check_generator(config: CovermillConfig, entry: registry.Registration) -> Check:
    """One installed generator: its module imports and fulfils the contract, and its own `check`
    (weights found? where? the fix) says whether it can run with config's options. A generator
    config does not enable is reported but fails nothing unless it is broken."""
    name = f"generator {entry.name} ({entry.distribution})"
    shadowed = f"; also registered by {', '.join(entry.shadowed)}, ignored" if entry.shadowed else ""
    try:
        module = registry.generator_module(entry.name)
        options = config.generate.options_for(entry.name)
        readiness = module.check(options) if hasattr(module, "check") else Readiness(True, "imports; it offers no check")
    except Exception as exc:  # a failure here means the generator cannot run at all
        return Check(name, False, f"cannot load ({exc}){shadowed}", _reinstall(entry))
    if entry.name not in config.generate.generators:
        return Check(name, True, f"{readiness.detail}; not enabled in config{shadowed}")
    if not readiness.ok:
        return Check(name, False, f"{readiness.detail}{shadowed}", readiness.fix or _reinstall(entry))
    return Check(name, True, f"{readiness.detail}; enabled{shadowed}")


def check_generators(config: CovermillConfig) -> list[Check]:
    """Every generator of the `covermill.generators` entry-point group, covermill's and others'."""
    entries = registry.registrations()
    if not entries:
        return [Check("generators", False, f"the {registry.GROUP} entry-point group is empty", REINSTALL)]
    return [check_generator(config, entry) for entry in entries.values()]


def check_stable_diffusion(config: CovermillConfig) -> Check:
    """Thumbnail pictures: found where from_pretrained will look, without loading them."""
    from covermill.models import stable_diffusion

    diffusers = f"diffusers {_version('diffusers')}"
    if config.thumbnail.generator != "stable-diffusion":
        return Check("thumbnail Stable Diffusion", True, f"{diffusers}; not enabled (thumbnail.generator: procedural)")
    options = config.thumbnail.stable_diffusion
    found = stable_diffusion.find_model_files(options.model, options.revision)
    if found is None:
        return Check("thumbnail Stable Diffusion", False, f"{diffusers}; model {options.model} not found, thumbnails "
                     f"would fall back to the procedural art", stable_diffusion.missing_model_message(options.model))
    return Check("thumbnail Stable Diffusion", True, f"{diffusers}; model in {found} (enabled)")


def check_torch(config: CovermillConfig) -> Check:
    try:
        import torch
    except ImportError as exc:
        return Check("torch", False, str(exc), "pip install torch==2.13.0 (the pinned CPU build; `make install`)")
    cuda = f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available() else "no GPU: CPU"
    return Check("torch", True, f"torch {torch.__version__}; {cuda}")


def local_server_line() -> str:
    """Which server a run uses when PREFECT_API_URL is unset (the runs' own choice, flows/local_server.py):
    covermill's local one when it answers, or a temporary one."""
    from covermill.flows.local_server import choose, prefect_home

    url, _ = choose(None, prefect_home())
    if url is not None:
        return f"the local server at {url} (covermill server start)"
    return "none configured: each run starts a temporary local server (`covermill server start` keeps one running)"


def check_prefect(config: CovermillConfig) -> Check:
    from prefect.settings import PREFECT_API_URL

    pins = {"prefect": _version("prefect"), "fastapi": _version("fastapi"), "sqlalchemy": _version("sqlalchemy")}
    major_minor = lambda v: tuple(int(p) for p in v.split(".")[:2])  # noqa: E731
    bad = []
    if major_minor(pins["fastapi"]) >= (0, 151):
        bad.append("fastapi >= 0.151 breaks prefect's server")
    if major_minor(pins["sqlalchemy"]) >= (2, 1):
        bad.append("SQLAlchemy 2.1 breaks prefect's scheduler")
    versions = ", ".join(f"{k} {v}" for k, v in pins.items())
    server = PREFECT_API_URL.value() or local_server_line()
    if bad:
        return Check("Prefect", False, f"{versions}: {'; '.join(bad)}", 'pip install "fastapi<0.151" "sqlalchemy[asyncio]<2.1"')
    return Check("Prefect", True, f"{versions}; server: {server}")


def check_gpu_slot(config: CovermillConfig) -> Check:
    """Who holds the `gpu` limit on the configured server: a slot held with nothing running is a
    killed run's, which its lease returns in `gpu.lease_s`, or `--reset-gpu-slot` at once."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    from covermill.tasks.core.gpu_slot import slot_usage

    name = config.gpu.limit
    if name is None:
        return Check("GPU slot", True, "gpu.limit is null: model calls hold no slot")
    if not PREFECT_API_URL.value():
        return Check("GPU slot", True, f"{name!r}: no server configured: runs share PREFECT_HOME's database, and a killed run's "
                                         "slot is given back by the next holder")
    try:
        usage = slot_usage(name)
    except (httpx.HTTPError, OSError) as exc:
        return Check("GPU slot", False, f"cannot reach {PREFECT_API_URL.value()} ({exc})", "start the Prefect server, or unset PREFECT_API_URL")
    if usage is None:
        return Check("GPU slot", True, f"{name!r} not created yet (the first model call creates it with {config.gpu.slots} slot(s))")
    held, slots = usage
    return Check("GPU slot", True, f"{name!r}: {held} of {slots} slot(s) held; a killed run's slot returns after "
                 f"gpu.lease_s ({config.gpu.lease_s:g} s), or free it now with `covermill doctor --reset-gpu-slot`")


def check_youtube_client(config: CovermillConfig) -> Check:
    """The OAuth client file `covermill auth` needs; only required once publishing is on."""
    path = config.upload.auth.client_secrets
    if path.is_file():
        return Check("YouTube OAuth client", True, f"{path}; `covermill auth` makes the token")
    if not config.upload.enabled:
        return Check("YouTube OAuth client", True, f"{path} not found; fine while upload.enabled is false (dry runs)")
    return Check("YouTube OAuth client", False, f"{path} not found and upload.enabled is true",
                 "Google Cloud console > APIs & Services > Credentials > OAuth client ID > Desktop app; "
                 "save the JSON there or set upload.auth.client_secrets")


# Each gives one Check, or a list of them (one per installed generator).
CHECKS: list[Callable[[CovermillConfig], Check | list[Check]]] = [
    check_ffmpeg,
    check_fluidsynth,
    check_soundfont,
    check_imagemagick,
    check_lilypond,
    check_fonts,
    check_essentia,
    check_generators,
    check_stable_diffusion,
    check_torch,
    check_prefect,
    check_gpu_slot,
    check_youtube_client,
]


def run_checks(config: CovermillConfig) -> list[Check]:
    checks: list[Check] = []
    for check in CHECKS:
        found = check(config)
        checks.extend(found if isinstance(found, list) else [found])
    return checks
