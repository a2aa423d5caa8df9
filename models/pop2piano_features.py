"""What Pop2Piano reads of a song before its model runs: the beat grid and the log-mel segments, and
their prefetch in a worker process.

Both are CPU work (beat tracking and features: 4.4-5.4 s of a 4-minute song on the H200 machine,
against 3.3-4.2 s of warm generation), so `prefetch` starts them in another process as soon as the
song's audio exists: the nightly asks for the next song's while this one's stages run, and the
generate stage for this song's while its transcribers run. The generator then takes the prefetched
features (models/pop2piano.py), or computes them itself when none were asked for.
"""

from __future__ import annotations

import atexit
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from covermill.models import hub
from covermill.models.audio import essentia_standard, read_audio, resample
from covermill.models.errors import SongNotSupported

BEAT_TRACKER_RATE = 44100  # RhythmExtractor2013 assumes it
MIN_BEATS = 4
TEMPO_RANGE = (30.0, 250.0)  # BPM; outside it the tracker is guessing (silence gives ~740)
MAX_PENDING = 4  # prefetched songs kept unclaimed (a nightly asks for one ahead); older ones are dropped


@dataclass
class SongFeatures:
    """What every variant of one song shares: the beat grid and the log-mel segments."""

    features: Any  # the processor's BatchFeature: input_features, beatsteps, extrapolated_beatstep
    bpm: float
    beats: int
    seconds: float
    prefetched: bool = False  # made in the prefetch worker while something else ran

    @property
    def segments(self) -> int:
        return int(self.features["input_features"].shape[0])


def track_beats(samples) -> tuple[float, Any]:
    """(bpm, beat times) from a RhythmExtractor2013 built for this song alone: a reused one keeps
    state from the previous song and returns its tempo."""
    try:
        bpm, beat_times, *_ = essentia_standard().RhythmExtractor2013(method="multifeature")(samples)
    except Exception as exc:  # essentia raises bare RuntimeErrors with its own text
        raise SongNotSupported(f"essentia's beat tracker failed on this song ({exc})") from exc
    return float(bpm), beat_times


def song_features(audio_path: Path, processor: Any, steps_per_beat: int, max_seconds: float) -> SongFeatures:
    """Beat grid and log-mel segments, with a readable reason when the beat tracker cannot help."""
    samples = read_audio(audio_path, BEAT_TRACKER_RATE, mono=True, quality="VHQ")
    seconds = len(samples) / BEAT_TRACKER_RATE
    if seconds > max_seconds:
        raise SongNotSupported(f"the song lasts {seconds:.0f} s, longer than pop2piano's limit of "
                               f"{max_seconds:.0f} s for beat tracking (option max_seconds)")
    bpm, beat_times = track_beats(samples)
    if len(beat_times) < MIN_BEATS or not TEMPO_RANGE[0] <= bpm <= TEMPO_RANGE[1]:
        raise SongNotSupported(f"essentia's beat tracker found no usable beat grid ({len(beat_times)} beats at "
                               f"{bpm:.0f} BPM in {seconds:.0f} s: silence, or no steady pulse)")
    extractor = processor.feature_extractor
    # Resampled here rather than inside the extractor with librosa's kaiser_best (seconds per
    # song); the beat times are in seconds and hold at any rate.
    model_rate = extractor.sampling_rate
    model_samples = resample(samples, BEAT_TRACKER_RATE, model_rate, quality="VHQ")
    original = extractor.extract_rhythm
    extractor.extract_rhythm = lambda audio: (bpm, beat_times, None, None, None)  # tracked above, once
    try:
        features = processor(audio=model_samples, sampling_rate=model_rate, steps_per_beat=steps_per_beat, return_tensors="pt")
    finally:
        extractor.extract_rhythm = original
    return SongFeatures(features=features, bpm=float(bpm), beats=len(beat_times), seconds=seconds)


@lru_cache(maxsize=None)
def load_processor(model: str, revision: str | None) -> Any:
    """The model's processor (feature extractor and tokenizer), once per process: the generator's
    (models/pop2piano.py turns a missing one into its sentence) and the prefetch worker's. OSError
    when its files are not there."""
    from transformers import Pop2PianoProcessor

    return Pop2PianoProcessor.from_pretrained(hub.source(model), revision=revision, local_files_only=hub.hub_offline())


def _features_in_worker(audio_path: str, model: str, revision: str | None, steps_per_beat: int, max_seconds: float) -> SongFeatures:
    features = song_features(Path(audio_path), load_processor(model, revision), steps_per_beat, max_seconds)
    features.prefetched = True
    return features


# What was asked for and not yet taken: (audio file, its size and mtime, the options that shape the
# features) -> the worker's future. A changed file is another key: its old features are never taken.
_pending: dict[tuple, Future] = {}
_pool: list[ProcessPoolExecutor] = []


def features_key(audio_path: Path, model: str, revision: str | None, steps_per_beat: int, max_seconds: float) -> tuple:
    stat = Path(audio_path).stat()
    return (str(Path(audio_path).resolve()), stat.st_size, stat.st_mtime_ns, model, revision, steps_per_beat, max_seconds)


def _worker() -> ProcessPoolExecutor:
    """One spawned worker, kept for the process (spawn, not fork: the parent runs Prefect's threads)."""
    if not _pool:
        _pool.append(ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")))
        atexit.register(_pool[0].shutdown, wait=False, cancel_futures=True)
    return _pool[0]


def prefetch(audio_path: Path, model: str, revision: str | None, steps_per_beat: int, max_seconds: float) -> None:
    """Start the song's features in the worker, unless they are already asked for."""
    key = features_key(audio_path, model, revision, steps_per_beat, max_seconds)
    if key in _pending:
        return
    while len(_pending) >= MAX_PENDING:
        _pending.pop(next(iter(_pending))).cancel()
    try:
        _pending[key] = _worker().submit(_features_in_worker, str(audio_path), model, revision, steps_per_beat, max_seconds)
    except BrokenProcessPool:  # the worker died (killed for memory): computed in place when needed
        _pool.clear()


def take_prefetched(audio_path: Path, model: str, revision: str | None, steps_per_beat: int,
                    max_seconds: float) -> SongFeatures | None:
    """The song's prefetched features (waiting for them when they are still being made), or None when
    none were asked for, the worker died or could not read the processor (the generator has its own);
    a song the worker found unsupported raises here."""
    pending = _pending.pop(features_key(audio_path, model, revision, steps_per_beat, max_seconds), None)
    if pending is None:
        return None
    try:
        return pending.result()
    except BrokenProcessPool:
        _pool.clear()
        return None
    except OSError:
        return None
