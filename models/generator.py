"""The generator interface: audio in, notes out. A new model is one new module in this folder.

A generator named `foo-bar` lives in `covermill.models.foo_bar` and exposes `load(options)`
returning one of two kinds of object with a `name`:
- a Transcriber, `transcribe(audio_path) -> list[Note]`: one transcription per song, which the
  generate stage then arranges for piano in every style (basic-pitch, transkun);
- a CoverGenerator, `cover(audio_path, variants, hold, progress) -> {Variant: list[Note]}`: a model that
  writes piano covers itself, many per song (one per arranger and seed: Pop2Piano).
Models load once per process (the cache below) because loading costs more than a short song's
inference.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

from covermill.models.device import Hold
from covermill.models.notes import Note


class Generator(Protocol):
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


class UnknownGenerator(ValueError):
    pass


class ModelMissing(RuntimeError):
    """The model's weights are not on this machine; the message says where to put them."""


class SongNotSupported(RuntimeError):
    """This generator cannot handle this song (e.g. no beat grid); the others still can."""


OptionsT = TypeVar("OptionsT")


def parse_options(generator: str, options_type: type[OptionsT], options: dict[str, Any] | None) -> OptionsT:
    """A generator's options dataclass from config.yaml, with one clear error for a misspelt key
    (range checks live in the dataclass's __post_init__)."""
    options = dict(options or {})
    known = sorted(f.name for f in dataclasses.fields(options_type))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown {generator} option(s) {', '.join(unknown)}; known options: {', '.join(known)}")
    return options_type(**options)


def module_name(name: str) -> str:
    return f"covermill.models.{name.replace('-', '_')}"


def cover_variants(name: str, options: dict[str, Any] | None = None) -> list[Variant] | None:
    """The covers a CoverGenerator module would make with these options (None for a Transcriber),
    read from its options alone: planning what is missing loads no model."""
    module = importlib.import_module(module_name(name))
    variants = getattr(module, "variants", None)
    return None if variants is None else variants(options)


def load_generator(name: str, options: dict[str, Any] | None = None) -> Generator:
    """The generator called `name`, loaded once per process for each distinct set of options."""
    return _load_cached(name, json.dumps(options or {}, sort_keys=True))


@lru_cache(maxsize=None)
def _load_cached(name: str, options_json: str) -> Generator:
    try:
        module = importlib.import_module(module_name(name))
    except ModuleNotFoundError as exc:
        if exc.name != module_name(name):
            raise
        raise UnknownGenerator(name) from None
    return module.load(json.loads(options_json))
