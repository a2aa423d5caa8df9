"""Generate stage: every generator's candidates for a song, side by side for the ranking.

Two kinds of generator (models/generator.py): a transcriber (basic-pitch, transkun) transcribes
the song once and each arrangement style turns that into a candidate; a cover model (Pop2Piano)
writes one candidate per arranger and seed itself, all of them in one batched call.

Everything this stage makes is a file in the song folder, written atomically: the raw
transcription per transcriber (so a re-run, or a new style in config.yaml, never transcribes
again) and one MIDI per candidate (candidates are named by generator, style or arranger, and
seed). Each file is kept while the fingerprint of what made it (tasks/core/fingerprints.py) still
matches config.yaml: a changed style re-arranges that style's candidates only, a changed
transcriber option re-transcribes that transcriber only. A generator that cannot handle this
song (Pop2Piano without a beat grid) is skipped with its reason; the others go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from covermill.models import registry
from covermill.models.device import Hold
from covermill.models.errors import BrokenGenerator, ModelMissing, OutOfMemory, SongNotSupported, UnknownGenerator
from covermill.models.generator import Variant, cover_variants, generator_options, load_generator, prefetch
from covermill.models.notes import Note
from covermill.models.options import ModelOptions
from covermill.tasks.arrange.analysis import SongAnalysis, analyse, load_analysis, save_analysis
from covermill.tasks.arrange.styles import ArrangeSettings, arrange_piece
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.fingerprints import Fingerprints, fingerprint
from covermill.tasks.core.gpu_slot import GpuSettings
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import read_midi, write_midi, write_piece
from covermill.tasks.core.records import Candidate, Generated, Song
from covermill.tasks.core.run_artifacts import progress_bar
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.stage_task import stage_logger, stage_task


def known_generators() -> list[str]:
    """The generators installed here: the `covermill.generators` entry-point group, read from
    metadata without importing any model library (models/registry.py)."""
    return registry.names()


# pydantic-core's own error types; any other type is a PydanticCustomError a generator raised.
_BUILT_IN_ERRORS = frozenset(get_args(ErrorType))


def _with_prefix(error: ValidationError, *prefix: str) -> ValidationError:
    """`error` with `prefix` put before every location, so that an option's error names its
    generator (pydantic then adds the field: generate.options.<generator>.<option>)."""
    details: list[InitErrorDetails] = []
    for line in error.errors(include_url=False):
        kind = line["type"]
        if kind not in _BUILT_IN_ERRORS:  # rebuilt from its rendered words, which are kept as they are
            kind = PydanticCustomError(kind, line["msg"], line.get("ctx"))
        detail = InitErrorDetails(type=kind, loc=(*prefix, *line["loc"]), input=line["input"])
        if "ctx" in line:
            detail["ctx"] = line["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(error.title, details)


class GenerateSettings(Settings):
    generators: list[str] = Field(default_factory=lambda: ["basic-pitch"])
    # generator -> its Options (validated by that generator's pydantic model); absent: its defaults
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("generators")
    @classmethod
    def _generators_exist(cls, generators: list[str]) -> list[str]:
        if not generators:
            raise ValueError("at least one generator is needed, e.g. basic-pitch")
        if len(set(generators)) != len(generators):
            raise ValueError(f"each generator may be listed once, got {generators}")
        for name in generators:
            try:
                registry.options_model(name)  # imports its module (not its model library) and checks the contract
            except BrokenGenerator as exc:  # UnknownGenerator is a ValueError already, listing the known ones
                raise ValueError(str(exc)) from None
        return generators

    @field_validator("options")
    @classmethod
    def _options_valid(cls, options: dict[str, Any]) -> dict[str, ModelOptions]:
        """Each generator's options through its own model; an error keeps its full path."""
        parsed = {}
        for name, given in options.items():
            try:
                parsed[name] = generator_options(name, given)
            except ValidationError as exc:
                raise _with_prefix(exc, name) from None
            except (UnknownGenerator, BrokenGenerator) as exc:
                raise ValidationError.from_exception_data("options", [InitErrorDetails(
                    type="value_error", loc=(name,), input=given, ctx={"error": ValueError(str(exc))})]) from None
        return parsed

    def options_for(self, generator: str) -> ModelOptions:
        """The generator's validated options: config's, or its defaults when config gives none."""
        return self.options[generator] if generator in self.options else generator_options(generator)

    @classmethod
    def nested_model(cls, field: str, key: str) -> type[BaseModel] | None:
        """The model that validates `field`[`key`] (a generator's Options for options.<name>), so
        flows/config.py can list the options known there when one is misspelt."""
        if field != "options":
            return None
        try:
            return registry.options_model(key)
        except (UnknownGenerator, BrokenGenerator):
            return None


NO_NOTES = "it found no notes"


def _load(generator: str, options: ModelOptions | None) -> Any:
    try:
        return load_generator(generator, options)
    except UnknownGenerator:
        raise CovermillError(f"unknown generator {generator!r}; use one of {', '.join(known_generators())}.") from None
    except (ModelMissing, BrokenGenerator) as exc:
        raise CovermillError(str(exc)) from None


def _held(model: Any, hold: Hold | None) -> Hold | None:
    return hold if getattr(model, "holds_gpu_slot", False) else None


def transcription_fingerprint(song: Song, generator: str, options: ModelOptions) -> str:
    return fingerprint("transcription", song.source_id, generator, options)


def analysis_fingerprint(song: Song) -> str:
    # The audio decides the grid; the notes that stand in for beats on beatless audio are left
    # out, so that adding a transcriber does not re-arrange every candidate.
    return fingerprint("analysis", song.source_id)


def transcribe_song(song: Song, folder: SongFolder, generator: str, options: ModelOptions | None = None,
                    hold: Hold | None = None) -> list[Note]:
    """The generator's notes for the song, transcribed once per set of options: later calls read
    the saved MIDI.

    The first call also returns what it reads back from the file, so the first run and every
    re-run arrange exactly the same notes.
    """
    path = folder.transcription(generator)
    fingerprints = Fingerprints.of(folder)
    made_with = transcription_fingerprint(song, generator, options or generator_options(generator))
    fresh = fingerprints.fresh(path, made_with)
    stage_logger("generate").info(f"{generator}: reading the saved transcription" if fresh
                                  else f"{generator}: transcribing {song.title or song.id!r}")
    if not fresh:
        with fingerprints.making(path, made_with):
            model = _load(generator, options)
            with (_held(model, hold) or nullcontext)():
                notes = model.transcribe(Path(song.audio))
            write_midi(notes, path)
    return read_midi(path)


def song_analysis(song: Song, folder: SongFolder, notes: list[Note]) -> SongAnalysis:
    """The song's beat grid, meter, melody and chords (tasks/arrange/analysis.py), tracked from its
    audio once and kept in analysis.json; `notes` stand in for the beats where the audio has none."""
    fingerprints = Fingerprints.of(folder)
    made_with = analysis_fingerprint(song)
    found = load_analysis(folder.analysis) if fingerprints.fresh(folder.analysis, made_with) else None
    if found is None:
        started = time.perf_counter()
        analysed = analyse(Path(song.audio), notes)
        # read back what was written, so the first run arranges on exactly the grid a re-run reads
        with fingerprints.making(folder.analysis, made_with):
            found = load_analysis(save_analysis(analysed, folder.analysis)) or analysed
        stage_logger("generate").info(
            f"analysis: {found.tempo:.0f} BPM, {found.grid.beats_per_bar} beats a bar, "
            f"{'triplets' if found.grid.steps_per_beat == 3 else 'straight'}, beats from the {found.grid.source}, "
            f"key {found.key or 'unknown'} ({time.perf_counter() - started:.1f} s)")
    return found


def candidate_id(generator: str, style: str, seed: int | None) -> str:
    return f"{generator}-{style}" if seed is None else f"{generator}-{style}-s{seed}"


def cover_candidate_id(generator: str, variant: Variant) -> str:
    return candidate_id(generator, f"a{variant.arranger:02d}", variant.seed)


def arranged_candidates(song: Song, folder: SongFolder, generator: str, options: ModelOptions,
                        arrange: ArrangeSettings, hold: Hold | None = None,
                        report: Callable[[float], None] = lambda _: None) -> list[Candidate]:
    """A transcriber's candidates: its transcription arranged in every style x seed (`report`
    hears the fraction done: the transcription is the first half)."""
    log = stage_logger("generate")
    fingerprints = Fingerprints.of(folder)
    inputs = (transcription_fingerprint(song, generator, options), analysis_fingerprint(song))
    styles = arrange.model_dump(mode="json")["styles"]
    planned = [(style, seed, candidate_id(generator, style, seed)) for style, seed in arrange.variants()]
    made_with = {cid: fingerprint("arranged", *inputs, styles[style], seed) for style, seed, cid in planned}
    missing = [p for p in planned if not fingerprints.fresh(folder.candidate_midi(p[2]), made_with[p[2]])]
    notes: list[Note] = []
    analysis: SongAnalysis | None = None
    if missing:
        notes = transcribe_song(song, folder, generator, options, hold)
        if not notes:
            log.warning(f"{generator} found no notes in {song.source}; it gives no candidates")
            return []
        log.info(f"{generator}: {len(notes)} notes; arranging {len(missing)} of {len(planned)} candidates")
        analysis = song_analysis(song, folder, notes)
    report(0.5)
    candidates = []
    for number, (style, seed, cid) in enumerate(planned, 1):
        report(0.5 + 0.5 * number / len(planned))
        path = folder.candidate_midi(cid)
        if fingerprints.fresh(path, made_with[cid]):
            count = len(read_midi(path))
        else:
            arranged = arrange_piece(notes, arrange.styles[style], seed, analysis)
            if not arranged.notes:
                log.warning(f"{cid}: the {style} style left no notes; skipped")
                fingerprints.forget(path)
                path.unlink(missing_ok=True)  # an older config's notes are not this style's
                continue
            with fingerprints.making(path, made_with[cid]):
                write_piece(arranged, path)  # on the song's bars, two hands and the pedal where the style made them
            count = len(arranged.notes)
        candidates.append(Candidate(id=cid, generator=generator, style=style, seed=seed, midi=path, note_count=count))
    return candidates


def cover_fingerprints(song: Song, generator: str, options: ModelOptions, variants: list[Variant]) -> dict[str, str]:
    """Candidate id -> the fingerprint of its cover, for every variant."""
    return {cover_candidate_id(generator, variant): fingerprint("cover", song.source_id, generator, options, variant.arranger, variant.seed)
            for variant in variants}


def missing_covers(folder: SongFolder, generator: str, variants: list[Variant], made_with: dict[str, str]) -> list[Variant]:
    """The variants whose cover is not in the folder under its fingerprint in `made_with` (cover_fingerprints)."""
    fingerprints = Fingerprints.of(folder)
    ids = [cover_candidate_id(generator, v) for v in variants]
    return [v for v, cid in zip(variants, ids) if not fingerprints.fresh(folder.candidate_midi(cid), made_with[cid])]


def prefetch_covers(song: Song, folder: SongFolder, generate: GenerateSettings) -> list[str]:
    """Start, in the cover models' own worker processes, the work they do on the song before their
    model runs (Pop2Piano: beats and features, 4.4-5.4 s of a 4-minute song), for each cover model
    with a cover still to make; the generators asked. Transcribers have nothing to start."""
    asked = []
    for generator in generate.generators:
        options = generate.options_for(generator)
        variants = cover_variants(generator, options)
        if (variants and missing_covers(folder, generator, variants, cover_fingerprints(song, generator, options, variants))
                and prefetch(generator, options, Path(song.audio))):
            asked.append(generator)
    return asked


def model_covers(song: Song, folder: SongFolder, generator: str, options: ModelOptions,
                 variants: list[Variant], hold: Hold | None = None) -> list[Candidate]:
    """A cover model's candidates: one per arranger x seed, the missing ones made in one call."""
    log = stage_logger("generate")
    fingerprints = Fingerprints.of(folder)
    planned = [(variant, cover_candidate_id(generator, variant)) for variant in variants]
    made_with = cover_fingerprints(song, generator, options, variants)
    missing = missing_covers(folder, generator, variants, made_with)
    if missing:
        log.info(f"{generator}: writing {len(missing)} of {len(planned)} covers of {song.title or song.id!r}")
        for variant in missing:  # an older config's cover is not kept under this config's name
            fingerprints.forget(folder.candidate_midi(cover_candidate_id(generator, variant)))
            folder.candidate_midi(cover_candidate_id(generator, variant)).unlink(missing_ok=True)
        model = _load(generator, options)
        try:
            covers = model.cover(Path(song.audio), missing, hold=_held(model, hold), progress=log.info)
        except OutOfMemory as exc:
            raise CovermillError(f"{generator}: {exc}.") from exc
        for variant in missing:
            cid = cover_candidate_id(generator, variant)
            if covers.get(variant):
                write_midi(covers[variant], folder.candidate_midi(cid))
                fingerprints.record(folder.candidate_midi(cid), made_with[cid])
    candidates = []
    for variant, cid in planned:
        path = folder.candidate_midi(cid)
        if not path.exists():
            log.warning(f"{cid}: the model wrote no notes; skipped")
            continue
        candidates.append(Candidate(id=cid, generator=generator, style=f"composer{variant.arranger}", seed=variant.seed,
                                    arranger=variant.arranger, midi=path, note_count=len(read_midi(path))))
    return candidates


def make_candidates(song: Song, folder: SongFolder, generate: GenerateSettings, arrange: ArrangeSettings,
                    hold: Hold | None = None, report: Callable[[float], None] = lambda _: None) -> Generated:
    """Every candidate MIDI of the song from every generator, made unless it exists.

    `hold()` wraps each call of a torch model (the Prefect `gpu` slot in a flow; nothing by default);
    `report` hears the fraction of the work done.
    """
    log = stage_logger("generate")
    # a cover model's CPU work starts now in its worker, overlapping the transcribers (and, in a
    # nightly, it was asked for while the previous song ran: then this finds it under way)
    prefetch_covers(song, folder, generate)
    candidates: list[Candidate] = []
    skipped: dict[str, str] = {}
    total = len(generate.generators)
    for number, generator in enumerate(generate.generators):
        options = generate.options_for(generator)
        share = lambda fraction, number=number: report((number + fraction) / total)  # noqa: E731
        try:
            variants = cover_variants(generator, options)
            if variants is None:
                made = arranged_candidates(song, folder, generator, options, arrange, hold, share)
            else:
                made = model_covers(song, folder, generator, options, variants, hold)
            share(1.0)
        except SongNotSupported as exc:
            log.warning(f"{generator}: no candidates for {song.title or song.id!r}: {exc}")
            skipped[generator] = str(exc)
            continue
        if not made:
            skipped[generator] = NO_NOTES
        candidates.extend(made)
    if not candidates:
        if all(reason == NO_NOTES for reason in skipped.values()):
            raise CovermillError(f"{song.source}: no generator found any notes, the audio seems to hold no music; "
                                 "give a recording with music in it.")
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
        raise CovermillError(f"{song.source}: no generator made a candidate ({reasons}).")
    return Generated(candidates=candidates, skipped=skipped)


@stage_task("generate")
def generate_candidates(song: Song, out_dir: Path, generate: GenerateSettings, arrange: ArrangeSettings,
                        gpu: GpuSettings) -> Generated:
    """Prefect task: the song's candidate MIDIs in its folder under `out_dir`; torch model calls
    hold the `gpu` concurrency slot; a progress artifact follows the work."""
    report = progress_bar("generate", song, f"Candidates of {song.title!r}: {', '.join(generate.generators)}")
    return make_candidates(song, SongFolder(out_dir, song.id), generate, arrange, gpu.holder(), report)
