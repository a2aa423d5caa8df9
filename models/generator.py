"""The generator interface: audio in, notes out. A new model is one new module in this folder.

A generator named `foo-bar` lives in `covermill.models.foo_bar` and exposes `load(options)`
returning an object with a `name` and `transcribe(audio_path) -> list[Note]`. Models load once
per process (the cache below) because loading costs more than a short song's inference.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

from covermill.models.notes import Note


class Generator(Protocol):
    name: str

    def transcribe(self, audio_path: Path) -> list[Note]:
        """Notes of the whole recording at `audio_path` (a 44.1 kHz WAV)."""
        ...


class UnknownGenerator(ValueError):
    pass


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
