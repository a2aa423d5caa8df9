"""Pop2Piano (transformers): piano covers written by a T5, one per arranger token and seed.

Pop2Piano reads a song in two-bar segments cut on essentia's beat grid and writes piano tokens
for each, conditioned on one of 21 "composer" (arranger) tokens. The cover of a song is all
arrangers x seeds; covermill makes them all and lets the ranking choose. What it costs is
`generate`, so everything else is done once:
- the model loads once per process (per model, device and dtype);
- beats and log-mel features are computed once per song and shared by every variant;
- transformers' `generate` takes one composer per call, so the conditioned encoder inputs are
  built here with the model's own mel-conditioner, one per arranger, and every (variant,
  segment) row of the song goes through `generate` in as few calls as memory allows;
- sampling noise is keyed per row (models/seeded_sampling.py), so a seed's cover does not depend
  on the batch it ran in, and halving the batch after an out-of-memory changes nothing.
"""

from __future__ import annotations

import copy
import importlib.metadata
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, field_validator, model_validator

from covermill.models import hub
from covermill.models.audio import read_audio, resample
from covermill.models.batching import run_in_batches
from covermill.models.device import Hold, resolve_device, resolve_dtype, usable_cores
from covermill.models.errors import ModelMissing, SongNotSupported
from covermill.models.generator import Readiness, Variant
from covermill.models.notes import Note, sort_notes
from covermill.models.options import Device, Dtype, ModelOptions

NAME = "pop2piano"
DEFAULT_MODEL = "sweetcocoa/pop2piano"
ARRANGERS = tuple(range(1, 22))  # composer1 .. composer21
BEAT_TRACKER_RATE = 44100  # RhythmExtractor2013 assumes it
MIN_BEATS = 4
TEMPO_RANGE = (30.0, 250.0)  # BPM; outside it the tracker is guessing (silence gives ~740)
# Sequences per generate call when config leaves it to the device. On 2 CPU cores 128 was fastest
# (0.68 s per 256-token sequence, against 0.84 at 32 and 1.2 at 256: past ~128 the decoder's caches
# outgrow the CPU's); a GPU takes a whole song's arrangers at once and halves on out-of-memory.
AUTO_BATCH = {"cpu": 128, "cuda": 2048}


def parse_arrangers(value: Any) -> list[int]:
    """`all`, `3`, `1,3,20` or a list of composer numbers -> sorted unique numbers in 1..21."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return list(ARRANGERS)
        try:
            value = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"arrangers must be 'all' or numbers like 1,3,20, got {value!r}") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"arrangers must be 'all' or numbers like 1,3,20, got {value!r}")
    numbers = sorted(set(value))
    if not numbers or any(n not in ARRANGERS for n in numbers):
        raise ValueError(f"arrangers are numbers from 1 to 21 (or 'all'), got {list(value)}")
    return numbers


class Pop2PianoOptions(ModelOptions):
    # arrangers and seeds choose which covers are made, each named by its own; the rest changes how it runs, not what it writes: left out of fingerprints (tasks/core/fingerprints.py)
    RUN_ONLY: ClassVar[frozenset[str]] = frozenset({"arrangers", "seeds", "batch_size", "max_seconds", "threads"})

    model: str = DEFAULT_MODEL  # a Hugging Face hub id or a local folder (from save_pretrained)
    revision: str | None = None  # a hub branch, tag or commit
    device: Device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    dtype: Dtype = "float32"  # on CUDA also float16 / bfloat16; the CPU always runs float32
    # "all", or composer numbers 1..21 like the CLI fork's -c 1,3,20 (also a YAML list or one number)
    arrangers: Annotated[list[int], BeforeValidator(parse_arrangers)] = "all"  # type: ignore[assignment]
    seeds: list[int] = [0, 1]
    sampling: bool = True  # False: greedy decoding, one cover per arranger (seeds ignored)
    temperature: float = Field(1.0, gt=0.0)
    top_k: int = Field(0, ge=0)  # 0: no top-k cut
    top_p: float = Field(0.95, gt=0.0, le=1.0)  # 1.0: no nucleus cut
    max_new_tokens: int = Field(256, ge=1)  # per two-bar segment
    batch_size: int = Field(0, ge=0)  # sequences (segments) per generate call, halved on out-of-memory; 0 = per device
    steps_per_beat: int = Field(2, ge=1)
    max_seconds: float = Field(900.0, gt=0.0)  # longer songs are refused before beat tracking (time and memory)
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 = every core this process may use

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must not repeat, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def _seeds_when_sampling(self) -> Pop2PianoOptions:
        if self.sampling and not self.seeds:
            raise ValueError("seeds must list at least one seed when sampling (or set sampling: false)")
        return self

    def variants(self) -> list[Variant]:
        seeds: list[int | None] = list(self.seeds) if self.sampling else [None]
        return [Variant(arranger, seed) for arranger in self.arrangers for seed in seeds]


Options = Pop2PianoOptions  # the name the generator contract asks for (models/generator.py)


def variants(options: Pop2PianoOptions) -> list[Variant]:
    """The covers these options ask for, one per arranger x seed (the contract's `variants`)."""
    return Pop2PianoOptions.coerce(options).variants()


def missing_model_message(model: str, offline: bool | None = None) -> str:
    return hub.missing_message("Pop2Piano model", model, DEFAULT_MODEL, "pop2piano", "generate.options.pop2piano.model", offline)


def find_model_files(model: str, revision: str | None = None) -> Path | None:
    return hub.find_files(model, "config.json", revision)


@lru_cache(maxsize=None)
def load_model(model: str, revision: str | None, device: str, dtype: str) -> tuple[Any, Any]:
    """(model, processor) from a hub id or a local folder, loaded once per process."""
    import torch
    from transformers import Pop2PianoForConditionalGeneration, Pop2PianoProcessor

    offline = hub.hub_offline()
    try:
        processor = Pop2PianoProcessor.from_pretrained(hub.source(model), revision=revision, local_files_only=offline)
        network = Pop2PianoForConditionalGeneration.from_pretrained(
            hub.source(model), revision=revision, local_files_only=offline, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise ModelMissing(missing_model_message(model, offline)) from exc
    if not hasattr(network.generation_config, "composer_to_feature_token"):
        raise ModelMissing(f"{model} has no generation_config.json with composer_to_feature_token (the arranger "
                           f"tokens); copy it from {DEFAULT_MODEL}.")
    return network.to(device).eval(), processor


@dataclass
class SongFeatures:
    """What every variant of one song shares: the beat grid and the log-mel segments."""

    features: Any  # the processor's BatchFeature: input_features, beatsteps, extrapolated_beatstep
    bpm: float
    beats: int
    seconds: float

    @property
    def segments(self) -> int:
        return int(self.features["input_features"].shape[0])


class Pop2PianoGenerator:
    name = NAME
    holds_gpu_slot = True  # every generate call runs inside the caller's hold()

    def __init__(self, options: Pop2PianoOptions):
        import torch

        self.options = options
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(self.device, options.dtype)
        torch.set_num_threads(options.threads or usable_cores())
        self.model, self.processor = load_model(options.model, options.revision, self.device, self.dtype)
        # lowered for the rest of the process after an out-of-memory
        self.batch_size = options.batch_size or AUTO_BATCH["cuda" if self.device.startswith("cuda") else "cpu"]
        self.last_run: dict[str, Any] = {}  # what the last song cost (for the bench and the log)

    def variants(self) -> list[Variant]:
        return self.options.variants()

    def cover(self, audio_path: Path, variants: list[Variant] | None = None,
              hold: Hold | None = None,
              progress: Callable[[str], None] | None = None) -> dict[Variant, list[Note]]:
        """Each variant's notes for the song: features once, then all rows batched through generate."""
        variants = list(variants if variants is not None else self.variants())
        progress = progress or (lambda message: None)
        started = time.perf_counter()
        song = self.song_features(Path(audio_path))
        featured = time.perf_counter()
        rows = [(variant, segment) for variant in variants for segment in range(song.segments)]
        progress(f"pop2piano: {len(variants)} covers x {song.segments} segments at {song.bpm:.0f} BPM "
                 f"= {len(rows)} sequences, {min(self.batch_size, len(rows))} per generate call")
        tokens = self.generate_rows(song, rows, hold or nullcontext, progress)
        generated = time.perf_counter()
        by_variant: dict[Variant, list[Any]] = {variant: [] for variant in variants}
        for (variant, _), row_tokens in zip(rows, tokens):
            by_variant[variant].append(row_tokens)
        covers = {variant: self.decode(song, row_tokens) for variant, row_tokens in by_variant.items()}
        self.last_run.update(features_s=featured - started, generate_s=generated - featured,
                             decode_s=time.perf_counter() - generated, covers=len(variants))
        return covers

    def song_features(self, audio_path: Path) -> SongFeatures:
        """Beat grid and log-mel segments, with a readable reason when the beat tracker cannot help."""
        samples = read_audio(audio_path, BEAT_TRACKER_RATE, mono=True, quality="VHQ")
        seconds = len(samples) / BEAT_TRACKER_RATE
        if seconds > self.options.max_seconds:
            raise SongNotSupported(f"the song lasts {seconds:.0f} s, longer than pop2piano's limit of "
                                   f"{self.options.max_seconds:.0f} s for beat tracking (option max_seconds)")
        bpm, beat_times = track_beats(samples)
        if len(beat_times) < MIN_BEATS or not TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]:
            raise SongNotSupported(f"essentia's beat tracker found no usable beat grid ({len(beat_times)} beats at "
                                   f"{bpm:.0f} BPM in {seconds:.0f} s: silence, or no steady pulse)")
        extractor = self.processor.feature_extractor
        # Resampled here rather than inside the extractor with librosa's kaiser_best (seconds per
        # song); the beat times are in seconds and hold at any rate.
        model_rate = extractor.sampling_rate
        model_samples = resample(samples, BEAT_TRACKER_RATE, model_rate, quality="VHQ")
        original = extractor.extract_rhythm
        extractor.extract_rhythm = lambda audio: (bpm, beat_times, None, None, None)  # tracked above, once
        try:
            features = self.processor(audio=model_samples, sampling_rate=model_rate,
                                      steps_per_beat=self.options.steps_per_beat, return_tensors="pt")
        finally:
            extractor.extract_rhythm = original
        return SongFeatures(features=features, bpm=float(bpm), beats=len(beat_times), seconds=seconds)

    def generate_rows(self, song: SongFeatures, rows: list[tuple[Variant, int]],
                      hold: Hold, progress: Callable[[str], None]) -> list[Any]:
        """Token ids of every (variant, segment) row, in as few generate calls as memory allows."""
        import torch
        from transformers import GenerationMixin, LogitsProcessorList

        from covermill.models.seeded_sampling import SamplingSettings, SeededSampler, row_key

        features = song.features["input_features"].to(self.device, dtype=self.model.dtype)
        conditioned: dict[int, Any] = {}  # arranger -> (segments, 1 + frames, d_model)

        def encoder_input(arranger: int) -> Any:
            if arranger not in conditioned:
                with torch.no_grad():
                    conditioned[arranger], _ = self.model.get_mel_conditioner_outputs(
                        input_features=features, composer=f"composer{arranger}",
                        generation_config=self.model.generation_config)
            return conditioned[arranger]

        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = self.options.max_new_tokens
        config.do_sample = False  # sampling happens in SeededSampler, per row
        config.num_beams = 1
        # Ids the tokenizer cannot read (the arranger tokens share the vocabulary) would decode as
        # time steps of -1 and send notes backwards: never let the model pick them.
        known = set(self.processor.tokenizer.encoder.values())
        config.suppress_tokens = [i for i in range(self.model.config.vocab_size) if i not in known]
        sampling = SamplingSettings(self.options.temperature, self.options.top_k, self.options.top_p)
        done = [0]

        def run(start: int, stop: int) -> list[Any]:
            chunk = rows[start:stop]
            embeds = torch.stack([encoder_input(variant.arranger)[segment] for variant, segment in chunk])
            processors = LogitsProcessorList()
            if self.options.sampling:
                keys = torch.tensor([row_key(variant.seed or 0, variant.arranger, segment) for variant, segment in chunk],
                                    dtype=torch.int64, device=self.device)
                processors.append(SeededSampler(keys, sampling))
            with hold(), torch.no_grad():
                output = GenerationMixin.generate(self.model, inputs_embeds=embeds, generation_config=config,
                                                  logits_processor=processors)
            done[0] += len(chunk)
            progress(f"pop2piano: {done[0]}/{len(rows)} sequences generated")
            return list(output.cpu())

        def halved(tried: int, size: int) -> None:
            progress(f"pop2piano: out of memory with {tried} sequences per call; retrying with {size}")

        tokens, self.batch_size = run_in_batches(len(rows), self.batch_size, run, on_halve=halved)
        self.last_run = {"sequences": len(rows), "segments": song.segments, "batch_size": min(self.batch_size, len(rows)),
                         "bpm": song.bpm, "seconds": song.seconds}
        return tokens

    def decode(self, song: SongFeatures, row_tokens: list[Any]) -> list[Note]:
        """One variant's rows (one per segment, in order) -> notes on the song's clock."""
        import numpy as np

        eos = int(self.model.generation_config.eos_token_id)
        width = max(len(t) for t in row_tokens) + 1
        # Padded with pad (0) and closed with EOS: the tokenizer cuts every row at its first EOS and
        # needs at least one (a row that never ended is then read to its end).
        ids = np.zeros((len(row_tokens), width), dtype=np.int64)
        for i, tokens in enumerate(row_tokens):
            ids[i, : len(tokens)] = tokens.numpy()
        ids[:, -1] = eos
        decoded = self.processor.batch_decode(token_ids=ids, feature_extractor_output=song.features, return_midi=False)
        notes = [Note(float(n.start), float(n.end), int(n.pitch), int(n.velocity))
                 for n in decoded["notes"] if n.end > n.start and 0 < n.velocity]
        return sort_notes(notes)


def track_beats(samples) -> tuple[float, Any]:
    """(bpm, beat times) from a RhythmExtractor2013 built for this song alone: a reused one keeps
    state from the previous song and returns its tempo."""
    import essentia.standard

    try:
        bpm, beat_times, *_ = essentia.standard.RhythmExtractor2013(method="multifeature")(samples)
    except Exception as exc:  # essentia raises bare RuntimeErrors with its own text
        raise SongNotSupported(f"essentia's beat tracker failed on this song ({exc})") from exc
    return float(bpm), beat_times


def load(options: Pop2PianoOptions | Mapping[str, Any] | None = None) -> Pop2PianoGenerator:
    """The contract's `load` (a mapping is validated first, for callers outside config)."""
    return Pop2PianoGenerator(Pop2PianoOptions.coerce(options))


def check(options: Pop2PianoOptions) -> Readiness:
    """Its weights are not shipped: look for them where from_pretrained will, without loading."""
    transformers = f"transformers {importlib.metadata.version('transformers')}"
    found = find_model_files(options.model, options.revision)
    if found is None:
        return Readiness(False, f"{transformers}; model {options.model} not found", missing_model_message(options.model),
                         fetched_on_load=not hub.looks_like_path(options.model) and not hub.hub_offline())
    return Readiness(True, f"{transformers}; model in {found}")
