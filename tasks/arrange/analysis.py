"""The song's analysis, tracked once per song from its audio: beat grid, meter, melody, chords, key.

`analyse(audio, notes)` reads the audio at 44.1 kHz mono and makes, in order:
- the beats (tasks/arrange/beat_tracking.py: essentia's RhythmExtractor2013 (degara), moved by half a beat
  when it locked onto the off-beats; else the notes' beats; else a steady 120 BPM);
- one spectral pass (tasks/arrange/spectra.py: HPCP chroma, the bass's onsets) that gives the
  meter and the first downbeat (tasks/arrange/meter.py), a chord per beat and the key
  (tasks/arrange/chords.py);
- the subdivision (steps per beat, tasks/arrange/meter.py) from the notes' onsets, or the audio's
  (essentia's OnsetRate) when there are no notes;
- the lead voice's pitch every 11.6 ms (tasks/arrange/melody_line.py: Melodia), unless `melody=False`.

Cost per minute of audio, timed on 60 s clips and a 5.5 min song on this 2-core machine (essentia
runs on one) with the "multifeature" beat tracker: 1.3 .. 1.4 s of CPU with the melody, 0.8 .. 0.9 s
with `melody=False`; of that the beat tracker took 0.6 s, Melodia 0.6 s, the spectral pass 0.12 s,
the audio's onsets 0.16 s (only when no notes are given), chords, key and meter under 0.02 s. The
"degara" tracker now used takes 0.22 s of those 0.6 s (a 60 s clip then took 1.35 s with the melody
and 0.72 s without, wall-clock, while other jobs shared the cores).

The generate stage computes it once per song and keeps it as analysis.json in the song's folder
(`save_analysis` / `load_analysis`); re-runs read the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from covermill.models.audio import essentia_standard
from covermill.models.notes import Note
from covermill.tasks.arrange.beat_tracking import audio_beats, fallback_beats, on_the_beat
from covermill.tasks.arrange.chords import NO_CHORD, beat_chords, parse_chord, song_key
from covermill.tasks.arrange.melody_line import HOP as MELODY_HOP
from covermill.tasks.arrange.melody_line import RATE, pitch_at, predominant_melody
from covermill.tasks.arrange.meter import bar_phase, subdivision
from covermill.tasks.arrange.spectra import Frames, bass_onsets_at, harmonic_change, segment_chroma, spectral_frames
from covermill.tasks.core.atomic import read_json, write_json
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.music import BeatGrid

FORMAT = 1  # analysis.json's layout; a file of another version is recomputed


@dataclass(frozen=True, eq=False)
class SongAnalysis:
    """What the arrangement steps follow: the grid (beats, meter, downbeats, subdivision), a chord per
    beat (`chord_at`), the lead voice's pitch (`melody_at`) and the key."""

    grid: BeatGrid
    tempo: float  # BPM: the tracker's estimate, or the grid's median
    duration: float  # seconds of audio analysed
    chords: tuple[str, ...] = ()  # one per grid beat, from that beat to the next: "C", "Am", ... or "N"
    chord_strengths: tuple[float, ...] = ()  # essentia's fit of each chord, 0 .. 1
    key: str = ""  # "C major", "A minor", ...; "" when unknown
    melody: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (n,) MIDI pitch per frame, NaN unvoiced
    melody_hop: float = MELODY_HOP / RATE  # seconds between melody frames; frame i at i * melody_hop

    @property
    def melody_times(self) -> np.ndarray:
        """(n,) seconds of each melody frame."""
        return np.arange(len(self.melody)) * self.melody_hop

    def melody_at(self, times: np.ndarray) -> np.ndarray:
        """(k,) the lead voice's MIDI pitch at each time (k,), NaN where nobody sings or it was not tracked."""
        return pitch_at(self.melody, self.melody_hop, times)

    def chord_label_at(self, time: float) -> str:
        """The chord sounding at `time` seconds; "N" before the first beat or without chords."""
        beat = int(np.searchsorted(self.grid.times, time, side="right")) - 1
        return self.chords[beat] if 0 <= beat < len(self.chords) else NO_CHORD

    def chord_at(self, time: float) -> tuple[int, frozenset[int]] | None:
        """(root pitch class, pitch classes) of the chord at `time`; None where there is none."""
        return parse_chord(self.chord_label_at(time))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "grid": self.grid.to_json(), "tempo": round(self.tempo, 3),
                "duration": round(self.duration, 3), "key": self.key, "chords": list(self.chords),
                "chord_strengths": [round(s, 3) for s in self.chord_strengths], "melody_hop": self.melody_hop,
                "melody": [None if math.isnan(p) else round(float(p), 2) for p in self.melody]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SongAnalysis:
        if data.get("format") != FORMAT:
            raise ValueError(f"analysis format {data.get('format')!r}, expected {FORMAT}")
        melody = np.array([np.nan if p is None else p for p in data["melody"]], dtype=float)
        return cls(grid=BeatGrid.from_json(data["grid"]), tempo=float(data["tempo"]), duration=float(data["duration"]),
                   chords=tuple(data["chords"]), chord_strengths=tuple(float(s) for s in data["chord_strengths"]),
                   key=str(data["key"]), melody=melody, melody_hop=float(data["melody_hop"]))


def save_analysis(analysis: SongAnalysis, path: Path) -> Path:
    """Write the analysis as JSON, atomically."""
    return write_json(Path(path), analysis.to_json())


def load_analysis(path: Path) -> SongAnalysis | None:
    """The analysis saved at `path`; None when there is none or it is unreadable or outdated (recompute it)."""
    try:
        return SongAnalysis.from_json(read_json(Path(path)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_audio(audio_path: Path) -> np.ndarray:
    """(m,) float32 mono samples at 44.1 kHz of any file essentia's loader (FFmpeg) reads."""
    es = essentia_standard()

    try:
        return np.asarray(es.MonoLoader(filename=str(audio_path), sampleRate=RATE)(), dtype=np.float32)
    except RuntimeError as exc:
        raise CovermillError(f"{audio_path}: the song analysis cannot read this audio ({exc}); check that the file is audio.") from None


def analyse(audio_path: Path, notes: list[Note] | None = None, melody: bool = True) -> SongAnalysis:
    """The song's analysis (module docstring) from its audio; `notes` (a transcription) stand in for
    the beats when the audio has no steady pulse, and give the onsets for the subdivision."""
    samples = load_audio(Path(audio_path))
    return analyse_samples(samples, notes, melody)


def analyse_samples(samples: np.ndarray, notes: list[Note] | None = None, melody: bool = True) -> SongAnalysis:
    """`analyse` on mono 44.1 kHz float32 samples (m,)."""
    duration = len(samples) / RATE
    frames = spectral_frames(samples)
    tracked = audio_beats(samples)
    if tracked is not None:
        tempo, beats = tracked
        beats, source = on_the_beat(beats, frames, duration), "audio"
    else:
        beats, source = fallback_beats(notes, duration)
        tempo = 60.0 / float(np.median(np.diff(beats)))
    meter, first_downbeat = meter_of(frames, beats)
    onsets = np.array([n.start for n in notes]) if notes else audio_onsets(samples)
    grid = BeatGrid(beats=tuple(beats), beats_per_bar=meter, first_downbeat=first_downbeat,
                    steps_per_beat=subdivision(onsets, beats), source=source)
    labels, strengths = beat_chords(frames, grid.times, duration)
    return SongAnalysis(grid=grid, tempo=float(tempo), duration=duration, chords=tuple(labels),
                        chord_strengths=tuple(strengths), key=song_key(frames),
                        melody=predominant_melody(samples) if melody else np.zeros(0))


def meter_of(frames: Frames, beats: np.ndarray) -> tuple[int, int]:
    """(beats per bar, first downbeat) from the harmonic change and bass onsets at the beats (k,)."""
    ends = np.append(beats, beats[-1] + (beats[-1] - beats[-2]))
    change = harmonic_change(segment_chroma(frames, ends))
    return bar_phase(change, bass_onsets_at(frames, beats))


def audio_onsets(samples: np.ndarray) -> np.ndarray:
    """(n,) onset times in seconds of mono 44.1 kHz samples (essentia's OnsetRate: HFC and complex-domain
    detection, 11.6 ms frames)."""
    es = essentia_standard()

    if len(samples) < RATE:
        return np.zeros(0)
    onsets, _ = es.OnsetRate()(np.asarray(samples, dtype=np.float32))
    return np.asarray(onsets, dtype=float)
