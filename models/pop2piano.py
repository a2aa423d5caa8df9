"""Pop2Piano (transformers): piano covers written by a T5, one per arranger token and seed.

Pop2Piano reads a song in two-bar segments cut on essentia's beat grid and writes piano tokens
for each, conditioned on one of 21 "composer" (arranger) tokens. The cover of a song is all
arrangers x seeds; covermill makes them all and lets the ranking choose. What it costs is
`generate`, so everything else is done once:
- the model loads once per process (per model, device and dtype) and is warmed up once, with a
  small generate at load (on CUDA that generate also measures what a sequence costs in memory);
- beats and log-mel features are computed once per song and shared by every variant;
- transformers' `generate` takes one composer per call, so the conditioned encoder inputs are
  built here with the model's own mel-conditioner, one per arranger, and every (variant,
  segment) row of the song goes through `generate` in as few calls as memory allows, evenly split;
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
from functools import lru_cache, partial
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, field_validator, model_validator

from covermill.models import gpu_memory, hub
from covermill.models.batching import describe_slices, even_slices, run_in_batches
from covermill.models.device import Hold, resolve_device, resolve_dtype, usable_cores
from covermill.models.errors import ModelMissing
from covermill.models.generator import Readiness, Variant
from covermill.models.notes import Note
from covermill.models.options import Device, Dtype, ModelOptions
from covermill.models.pop2piano_features import SongFeatures, load_processor, song_features, take_prefetched
from covermill.models.pop2piano_features import prefetch as prefetch_features

NAME = "pop2piano"
DEFAULT_MODEL = "sweetcocoa/pop2piano"
ARRANGERS = tuple(range(1, 22))  # composer1 .. composer21
# Sequences per generate call on a CPU when config leaves it to the device. On 2 CPU cores 128 was
# fastest (0.68 s per 256-token sequence, against 0.84 at 32 and 1.2 at 256: past ~128 the decoder's
# caches outgrow the CPU's). A GPU takes every row its free memory holds (models/gpu_memory.py).
AUTO_BATCH_CPU = 128
# The warm-up generate. A CPU has no kernels to load: a token or four on two rows is enough. On CUDA
# one row first (kernels, cuBLAS workspace: costs that are not a sequence's), then 64 rows at the
# full max_new_tokens, whose peak memory / 64 is the cost of a sequence (64 keeps what is not per
# row a small share). Its features are zeros of two 4/4 bars at 60 BPM (10.8 frames a second: 50
# frames at 104 BPM): slower songs have longer encoder inputs, and the out-of-memory halving
# catches those.
WARMUP_CPU = (2, 4)  # (rows, tokens)
CALIBRATION_ROWS = 64
WARMUP_FRAMES = 88


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
    from transformers import Pop2PianoForConditionalGeneration

    offline = hub.hub_offline()
    try:
        processor = load_processor(model, revision)
        network = Pop2PianoForConditionalGeneration.from_pretrained(
            hub.source(model), revision=revision, local_files_only=offline, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise ModelMissing(missing_model_message(model, offline)) from exc
    if not hasattr(network.generation_config, "composer_to_feature_token"):
        raise ModelMissing(f"{model} has no generation_config.json with composer_to_feature_token (the arranger "
                           f"tokens); copy it from {DEFAULT_MODEL}.")
    return network.to(device).eval(), processor


@dataclass(frozen=True)
class Warmup:
    """The warm-up of one loaded model: what it cost and, on CUDA, what one sequence costs in memory."""

    seconds: float
    rows: int
    tokens: int
    row_bytes: int | None  # peak device memory per sequence of `tokens` tokens (None: not measured, a CPU)


# (model, revision, device, dtype, tokens) -> its warm-up: once per loaded model and process, like
# load_model, so a nightly run or a worker that keeps the process pays it on its first song only.
_warmups: dict[tuple[str, str | None, str, str, int], Warmup] = {}


class Pop2PianoGenerator:
    name = NAME
    holds_gpu_slot = True  # every generate call runs inside the caller's hold()

    def __init__(self, options: Pop2PianoOptions, warm_up: bool = True):
        import torch

        self.options = options
        self.device = resolve_device(options.device)
        self.dtype = resolve_dtype(self.device, options.dtype)
        cuda = self.device.startswith("cuda")
        torch.set_num_threads(options.threads or usable_cores())
        self.model, self.processor = load_model(options.model, options.revision, self.device, self.dtype)
        # Sequences per generate call: configured, or lowered for the rest of the process after an
        # out-of-memory; 0 on CUDA = what the free memory holds, asked before every song.
        self.batch_size = options.batch_size or (0 if cuda else AUTO_BATCH_CPU)
        self.free_memory: Callable[[], int] | None = partial(gpu_memory.free_bytes, self.device) if cuda else None
        self.last_run: dict[str, Any] = {}  # what the last song cost (for the bench and the log)
        self._tokens: Any = None  # the tokenizer's vocabulary as tables, made at the first decode
        # the model's warm-up (None when skipped, to compare); warmup_s: what this load spent on it
        self.warmup: Warmup | None = None
        self.warmup_s = 0.0
        if warm_up:
            self.warm_up()

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
        limit, memory = self.rows_per_call()
        plan = describe_slices(even_slices(len(rows), limit))
        if memory:
            plan += f" (free {memory['free_gb']:.1f} GB, {memory['row_mb']:.1f} MB a sequence)"
        progress(f"pop2piano: {len(variants)} covers x {song.segments} segments at {song.bpm:.0f} BPM "
                 f"= {len(rows)} sequences in {plan}")
        tokens = self.generate_rows(song, rows, limit, hold or nullcontext, progress)
        self.last_run.update(memory)
        generated = time.perf_counter()
        by_variant: dict[Variant, list[Any]] = {variant: [] for variant in variants}
        for (variant, _), row_tokens in zip(rows, tokens):
            by_variant[variant].append(row_tokens)
        covers = {variant: self.decode(song, row_tokens) for variant, row_tokens in by_variant.items()}
        self.last_run.update(features_s=featured - started, features_prefetched=song.prefetched, generate_s=generated - featured,
                             decode_s=time.perf_counter() - generated, covers=len(variants))
        return covers

    def song_features(self, audio_path: Path) -> SongFeatures:
        """Beat grid and log-mel segments: prefetched in the worker when they were asked for
        (models/pop2piano_features.py), else computed here."""
        o = self.options
        found = take_prefetched(Path(audio_path), o.model, o.revision, o.steps_per_beat, o.max_seconds)
        return found or song_features(Path(audio_path), self.processor, o.steps_per_beat, o.max_seconds)

    def rows_per_call(self) -> tuple[int, dict[str, float]]:
        """Sequences per generate call, and on CUDA the memory figures that sized it: the batch
        size when there is one, else every row the free memory holds at the measured cost."""
        if self.batch_size or self.free_memory is None:
            return self.batch_size or AUTO_BATCH_CPU, {}
        free = self.free_memory()
        row_bytes = self.row_bytes()
        return gpu_memory.rows_that_fit(free, row_bytes), {"free_gb": free / 1e9, "row_mb": row_bytes / 1e6}

    def row_bytes(self) -> int:
        """Device memory one sequence takes: measured at the warm-up, else the H200 figure scaled."""
        if self.warmup is not None and self.warmup.row_bytes:
            return self.warmup.row_bytes
        return gpu_memory.fallback_row_bytes(self.options.max_new_tokens, self.model.dtype.itemsize)

    def warm_up(self) -> Warmup:
        """A small real generate through the song's own path, once per loaded model and process:
        the first generate of a process pays for kernels and the allocator (13-26 s on an H200),
        and on CUDA the peak memory of 64 full-length sequences says what one costs. Outputs do
        not change: sampling is keyed per row and nothing here touches the model's state."""
        cuda = self.device.startswith("cuda")
        tokens = self.options.max_new_tokens if cuda else min(WARMUP_CPU[1], self.options.max_new_tokens)
        key = (self.options.model, self.options.revision, self.device, self.dtype, tokens)
        if key not in _warmups:
            started = time.perf_counter()
            if cuda:
                self.generate_zeros(1, min(8, tokens))
                with gpu_memory.peak_memory(self.device) as peak:
                    self.generate_zeros(CALIBRATION_ROWS, tokens)
                warmup = Warmup(time.perf_counter() - started, CALIBRATION_ROWS, tokens,
                                -(-peak.bytes // CALIBRATION_ROWS))
            else:
                self.generate_zeros(WARMUP_CPU[0], tokens)
                warmup = Warmup(time.perf_counter() - started, WARMUP_CPU[0], tokens, None)
            # two threads may both warm a model first asked for at once (as with lru_cache); one is kept
            if _warmups.setdefault(key, warmup) is warmup:
                self.warmup_s = warmup.seconds
        self.warmup = _warmups[key]
        return self.warmup

    def generate_zeros(self, rows: int, tokens: int) -> None:
        """`rows` sequences of exactly `tokens` tokens (no end token may stop them early) on zero features."""
        import torch

        features = torch.zeros(rows, WARMUP_FRAMES, self.processor.feature_extractor.feature_size,
                               dtype=self.model.dtype, device=self.device)
        with torch.no_grad():
            embeds, _ = self.model.get_mel_conditioner_outputs(input_features=features, composer="composer1",
                                                               generation_config=self.model.generation_config)
        self.generate_call(embeds, [(Variant(1, 0), segment) for segment in range(rows)],
                           self.generation_config(tokens, full_length=True))

    def generation_config(self, max_new_tokens: int, full_length: bool = False) -> Any:
        config = copy.deepcopy(self.model.generation_config)
        config.max_new_tokens = max_new_tokens
        if full_length:
            config.min_new_tokens = max_new_tokens
        config.do_sample = False  # sampling happens in SeededSampler, per row
        config.num_beams = 1
        # Ids the tokenizer cannot read (the arranger tokens share the vocabulary) would decode as
        # time steps of -1 and send notes backwards: never let the model pick them.
        known = set(self.processor.tokenizer.encoder.values())
        config.suppress_tokens = [i for i in range(self.model.config.vocab_size) if i not in known]
        return config

    def generate_call(self, embeds: Any, rows: list[tuple[Variant, int]], config: Any) -> list[Any]:
        """One `generate` on these encoder inputs, one per (variant, segment) row: each row's token ids."""
        import torch
        from transformers import GenerationMixin, LogitsProcessorList

        from covermill.models.seeded_sampling import SamplingSettings, SeededSampler, row_key

        processors = LogitsProcessorList()
        if self.options.sampling:
            keys = torch.tensor([row_key(variant.seed or 0, variant.arranger, segment) for variant, segment in rows],
                                dtype=torch.int64, device=self.device)
            processors.append(SeededSampler(keys, SamplingSettings(self.options.temperature, self.options.top_k,
                                                                   self.options.top_p)))
        with torch.no_grad():
            output = GenerationMixin.generate(self.model, inputs_embeds=embeds, generation_config=config,
                                              logits_processor=processors)
        return list(output.cpu())

    def generate_rows(self, song: SongFeatures, rows: list[tuple[Variant, int]], limit: int,
                      hold: Hold, progress: Callable[[str], None]) -> list[Any]:
        """Token ids of every (variant, segment) row, in even calls of at most `limit` rows."""
        import torch

        features = song.features["input_features"].to(self.device, dtype=self.model.dtype)
        conditioned: dict[int, Any] = {}  # arranger -> (segments, 1 + frames, d_model)

        def encoder_input(arranger: int) -> Any:
            if arranger not in conditioned:
                with torch.no_grad():
                    conditioned[arranger], _ = self.model.get_mel_conditioner_outputs(
                        input_features=features, composer=f"composer{arranger}",
                        generation_config=self.model.generation_config)
            return conditioned[arranger]

        config = self.generation_config(self.options.max_new_tokens)
        done, calls = [0], [0]

        def run(start: int, stop: int) -> list[Any]:
            chunk = rows[start:stop]
            embeds = torch.stack([encoder_input(variant.arranger)[segment] for variant, segment in chunk])
            with hold():
                output = self.generate_call(embeds, chunk, config)
            done[0] += len(chunk)
            calls[0] += 1
            progress(f"pop2piano: {done[0]}/{len(rows)} sequences generated")
            return output

        def halved(tried: int, size: int) -> None:
            progress(f"pop2piano: out of memory with {tried} sequences per call; retrying with {size}")

        tokens, fits = run_in_batches(len(rows), limit, run, on_halve=halved)
        if fits < limit:  # an out-of-memory said what fits: the limit for the rest of the process
            self.batch_size = fits
        self.last_run = {"sequences": len(rows), "segments": song.segments, "batch_size": min(fits, len(rows)),
                         "calls": calls[0], "bpm": song.bpm, "seconds": song.seconds}
        return tokens

    def decode(self, song: SongFeatures, row_tokens: list[Any]) -> list[Note]:
        """One variant's rows (one per segment, in order) -> notes on the song's clock, as the
        tokenizer's batch_decode reads them (models/pop2piano_decode.py: the same notes, compiled)."""
        from covermill.models.pop2piano_decode import decode_rows, token_table

        if self._tokens is None:
            self._tokens = token_table(self.processor.tokenizer)
        return decode_rows(row_tokens, int(self.model.generation_config.eos_token_id), song.features, self.processor, self._tokens)


def prefetch(options: Pop2PianoOptions | Mapping[str, Any] | None, audio_path: Path) -> None:
    """The contract's optional `prefetch`: start the song's beats and features in a worker process,
    for the generator to take when it covers the song (models/pop2piano_features.py)."""
    o = Pop2PianoOptions.coerce(options)
    prefetch_features(Path(audio_path), o.model, o.revision, o.steps_per_beat, o.max_seconds)


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
