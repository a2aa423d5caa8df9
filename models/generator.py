"""The generator interface: audio in, notes out, and the contract a generator module fulfils.

A generator is a module registered in the `covermill.generators` entry-point group
(models/registry.py) under the name config.yaml uses. covermill registers basic-pitch, transkun
and pop2piano in its pyproject.toml; any other installed package adds one the same way, without
touching covermill:

    [project.entry-points."covermill.generators"]
    etude = "etude_covermill.generator"

The registered module provides:
- `Options`: a pydantic model subclassing covermill.models.options.ModelOptions, read from
  config.yaml's generate.options.<name> (its defaults when absent). It is validated when config is
  read, so a bad option is one sentence naming generate.options.<name>.<key>.
- `load(options: Options)` returning one of two kinds of object with a `name`:
  - a Transcriber, `transcribe(audio_path) -> list[Note]`: one transcription per song, which the
    generate stage then arranges for piano in every style (basic-pitch, transkun);
  - a CoverGenerator, `cover(audio_path, variants, hold, progress) -> {Variant: list[Note]}`: a
    model that writes piano covers itself, many per song (one per arranger and seed: Pop2Piano).
  Import the model library inside `load`, not at module level: validating config and
  `covermill doctor` import the module and should not pay for torch.
- `variants(options) -> list[Variant]` (a CoverGenerator only): the covers it would make, read
  from the options alone, so that planning what is missing loads no model.
- optionally `check(options) -> Readiness`: are the weights on this machine, where, and what to do
  when they are not; `covermill doctor` shows it. It must not load the model.
- optionally `prefetch(options, audio_path)`: start the CPU work a song needs before the model runs
  (in another process) and return at once; the generator takes it when it covers that song. The
  generate stage asks for it before its transcribers run, the nightly for the next song.
Models load once per process for each distinct set of options (the cache below) because loading
costs more than a short song's inference. Where the environment names a model host (`covermill
serve` and `covermill worker` start one, models/host.py), `load_generator` and `prefetch` forward to
it instead, so that models stay loaded and warm across the runs' processes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from covermill.models import registry
from covermill.models.device import Hold
from covermill.models.notes import Note
from covermill.models.options import ModelOptions


class Transcriber(Protocol):
    name: str

    def transcribe(self, audio_path: Path) -> list[Note]:
        """Notes of the whole recording at `audio_path` (a 44.1 kHz WAV)."""
        ...


class Variant(NamedTuple):
    """One cover a CoverGenerator makes of a song: an arranger (style token) and a sampling seed
    (None when decoding is greedy, which gives one cover per arranger)."""

    arranger: int
    seed: int | None


class CoverGenerator(Protocol):
    name: str

    def variants(self) -> list[Variant]:
        """The covers config.yaml asks for, in order."""
        ...

    def cover(self, audio_path: Path, variants: list[Variant],
              hold: Hold | None = None, progress: Callable[[str], None] | None = None) -> dict[Variant, list[Note]]:
        """Notes of each variant; every model call runs inside `hold()` (the GPU slot), and
        `progress` hears about long work."""
        ...


Generator = Transcriber | CoverGenerator


class Readiness(NamedTuple):
    """What a generator module's `check(options)` tells `covermill doctor`."""

    ok: bool
    detail: str  # what was found and where (or what is missing)
    fix: str = ""  # what to do when not ok; empty: reinstall the distribution that provides it
    # not ok, yet loading fetches it (a hub id while the hub is reachable): a run goes ahead
    fetched_on_load: bool = False


def shipped_weights(distribution: str, weights_path: Callable[[], Path], digits: int = 1) -> Readiness:
    """Readiness of a generator whose weights ship inside its wheel: the file is found (not loaded,
    so no model library is imported) and named with its size."""
    import importlib.metadata

    try:
        weights = weights_path()
    except ModuleNotFoundError as exc:
        return Readiness(False, f"cannot load ({exc})")
    if not weights.exists():
        return Readiness(False, f"weights missing at {weights}")
    size = f"{weights.stat().st_size / 1e6:.{digits}f} MB"
    return Readiness(True, f"{distribution} {importlib.metadata.version(distribution)}; {weights.name} ({size})")


OptionsLike = ModelOptions | Mapping[str, Any] | None  # validated, to validate, or the defaults


def generator_options(name: str, options: OptionsLike = None) -> ModelOptions:
    """`name`'s validated options from a mapping (None: its defaults), or `options` as they are
    when already its Options; a bad option raises pydantic's ValidationError."""
    return registry.options_model(name).coerce(options)


def cover_variants(name: str, options: OptionsLike = None) -> list[Variant] | None:
    """The covers a CoverGenerator would make with these options (None for a Transcriber), read
    from its options alone: planning what is missing loads no model."""
    module = registry.generator_module(name)
    variants = getattr(module, "variants", None)
    return None if variants is None else variants(generator_options(name, options))


def prefetch(name: str, options: OptionsLike, audio_path: Path) -> bool:
    """Ask the generator to start its work on the song ahead (the contract's optional `prefetch`),
    in the model host when there is one (its generator takes the work); whether it has one."""
    from covermill.models import host  # here, not above: models/host.py imports this module

    module = registry.generator_module(name)
    start = getattr(module, "prefetch", None)
    if start is None:
        return False
    parsed = generator_options(name, options)
    if not host.forward_prefetch(name, parsed, Path(audio_path)):
        start(parsed, Path(audio_path))
    return True


# (name, module, options as JSON) -> the loaded generator. Options are keyed by their JSON because
# a model's options may hold lists, which a frozen pydantic model cannot hash.
_loaded: dict[tuple[str, str, str], Generator] = {}


def load_generator(name: str, options: OptionsLike = None) -> Generator:
    """The generator called `name`: loaded in the model host when one answers (a HostedGenerator
    forwards the calls), else here, once per process for each distinct set of options."""
    from covermill.models import host  # here, not above: models/host.py imports this module

    parsed = generator_options(name, options)
    hosted = host.hosted_generator(name, parsed)
    return hosted if hosted is not None else _load_here(name, parsed)


def _load_here(name: str, parsed: ModelOptions) -> Generator:
    key = (name, registry.registration(name).module, parsed.model_dump_json())
    if key not in _loaded:
        # two threads may both load a model first asked for at once (as with lru_cache); one is kept
        _loaded.setdefault(key, registry.generator_module(name).load(parsed))
    return _loaded[key]
