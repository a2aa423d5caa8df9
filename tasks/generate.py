"""Generate stage: transcribe a song with each generator once, then arrange it in every style.

Everything this stage makes is a file in the song folder, written atomically: the raw
transcription per generator (so a re-run, or a new style in config.yaml, never transcribes again)
and one MIDI per candidate (kept if it exists: candidates are named by generator, style and seed,
and a style's notes depend on nothing else).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

import covermill.models
from covermill.models.generator import UnknownGenerator, load_generator, module_name
from covermill.models.notes import Note
from covermill.tasks.arrange import ArrangeSettings
from covermill.tasks.arrange import arrange as arrange_notes
from covermill.tasks.errors import CovermillError
from covermill.tasks.layout import SongFolder
from covermill.tasks.midi import read_midi, write_midi
from covermill.tasks.records import Candidate, Song
from covermill.tasks.settings import Settings
from covermill.tasks.stage import stage, stage_logger


def known_generators() -> list[str]:
    """Names of the generator modules in covermill.models: a top-level `load` and a `transcribe` method.

    Read from the source, not imported, so that listing them loads no model library.
    """
    names = []
    for info in pkgutil.iter_modules(covermill.models.__path__):
        spec = importlib.util.find_spec(f"covermill.models.{info.name}")
        if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
            continue
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        has_load = any(isinstance(node, ast.FunctionDef) and node.name == "load" for node in tree.body)
        has_transcribe = any(
            isinstance(item, ast.FunctionDef) and item.name == "transcribe"
            for node in tree.body if isinstance(node, ast.ClassDef) for item in node.body
        )
        if has_load and has_transcribe:
            names.append(info.name.replace("_", "-"))
    return sorted(names)


class GenerateSettings(Settings):
    generators: list[str] = Field(default_factory=lambda: ["basic-pitch"])
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)  # generator -> options for its load()

    @model_validator(mode="after")
    def _generators_exist(self) -> GenerateSettings:
        if not self.generators:
            raise ValueError("at least one generator is needed, e.g. basic-pitch")
        if len(set(self.generators)) != len(self.generators):
            raise ValueError(f"each generator may be listed once, got {self.generators}")
        known = known_generators()
        for name in [*self.generators, *self.options]:
            if name not in known:
                raise ValueError(f"unknown generator {name!r}; known generators: {', '.join(known)}")
        for name, options in self.options.items():
            check = getattr(importlib.import_module(module_name(name)), "parse_options", None)
            if check is not None:
                check(options)  # a ValueError naming the bad option
        return self

    def options_for(self, generator: str) -> dict[str, Any]:
        return dict(self.options.get(generator, {}))


def transcribe_song(song: Song, folder: SongFolder, generator: str, options: dict[str, Any] | None = None) -> list[Note]:
    """The generator's notes for the song, transcribed once: later calls read the saved MIDI.

    The first call also returns what it reads back from the file, so the first run and every
    re-run arrange exactly the same notes.
    """
    path = folder.transcription(generator)
    if not path.exists():
        try:
            model = load_generator(generator, options)
        except UnknownGenerator:
            raise CovermillError(f"unknown generator {generator!r}; use one of {', '.join(known_generators())}.") from None
        write_midi(model.transcribe(Path(song.audio)), path)
    return read_midi(path)


def candidate_id(generator: str, style: str, seed: int | None) -> str:
    return f"{generator}-{style}" if seed is None else f"{generator}-{style}-s{seed}"


def make_candidates(song: Song, folder: SongFolder, generate: GenerateSettings, arrange: ArrangeSettings) -> list[Candidate]:
    """Every candidate MIDI of the song (generators x styles x seeds), made unless it exists."""
    log = stage_logger("generate")
    variants = arrange.variants()
    candidates: list[Candidate] = []
    for generator in generate.generators:
        planned = [(style, seed, candidate_id(generator, style, seed)) for style, seed in variants]
        missing = [p for p in planned if not folder.candidate_midi(p[2]).exists()]
        notes: list[Note] = []
        if missing:
            log.info(f"{generator}: transcribing {song.title or song.id}" if not folder.transcription(generator).exists()
                     else f"{generator}: reading the saved transcription")
            notes = transcribe_song(song, folder, generator, generate.options_for(generator))
            if not notes:
                log.warning(f"{generator} found no notes in {song.source}; it gives no candidates")
                continue
            log.info(f"{generator}: {len(notes)} notes; arranging {len(missing)} of {len(planned)} candidates")
        for style, seed, cid in planned:
            path = folder.candidate_midi(cid)
            if path.exists():
                count = len(read_midi(path))
            else:
                arranged = arrange_notes(notes, arrange.styles[style], seed)
                if not arranged:
                    log.warning(f"{cid}: the {style} style left no notes; skipped")
                    continue
                write_midi(arranged, path)
                count = len(arranged)
            candidates.append(Candidate(id=cid, generator=generator, style=style, seed=seed, midi=path, note_count=count))
    if not candidates:
        raise CovermillError(f"{song.source}: no generator found any notes; the audio seems to hold no music.")
    return candidates


@stage("generate")
def generate_candidates(song: Song, out_dir: Path, generate: GenerateSettings, arrange: ArrangeSettings) -> list[Candidate]:
    """Prefect task: the song's candidate MIDIs in its folder under `out_dir`."""
    return make_candidates(song, SongFolder(out_dir, song.id), generate, arrange)
