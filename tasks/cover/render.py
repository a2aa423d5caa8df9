"""Render notes to audio with FluidSynth: the candidates (for ranking) and the winner (for the video).

The soundfont (FluidR3_GM, 141 MB) loads once per process into one cached synthesizer; every
render resets it and lets the previous render's voices and reverb die out first, so nothing leaks
from one candidate into the next. (Renders of the same notes still differ slightly sample by
sample, about -25 dB, because the reverb's delay modulation keeps running between renders;
they sound the same and give the same chroma.) Samples come out as float (no int16 clipping, no dither noise), and a
peak-safe loudness normalisation makes every candidate equally loud.
"""

from __future__ import annotations

import threading
from ctypes import c_int, c_void_p
from pathlib import Path

import numpy as np
from pydantic import Field

from covermill.models.notes import Note
from covermill.tasks.core.atomic import copy_atomic, file_sha256
from covermill.tasks.core.audio import SAMPLE_RATE, write_audio
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.fingerprints import Fingerprints, fingerprint
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import PEDAL, read_piece
from covermill.tasks.core.records import Candidate, Song
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.stage_task import stage_logger, stage_task
from covermill.tasks.cover.fluidsynth_library import import_fluidsynth
from covermill.tasks.rank.qmax import PROTOCOL

fluidsynth = import_fluidsynth()

SILENCE = 1e-6  # -120 dBFS: FluidSynth's anti-denormal offset sits near 1e-8, real sound far above
_DRAIN_BLOCK_SECONDS = 0.05
_DRAIN_MAX_SECONDS = 10.0
# FluidSynth renders in blocks of 64 samples and applies events at block starts; starting every
# render on a block boundary makes note timing the same whatever was rendered before.
_FLUID_BLOCK = 64

# pyfluidsynth only exposes 16-bit output (dithered and clipped); the float writer is in the same library.
_write_float = fluidsynth.cfunc(
    "fluid_synth_write_float", c_int,
    ("synth", c_void_p, 1), ("len", c_int, 1),
    ("lout", c_void_p, 1), ("loff", c_int, 1), ("lincr", c_int, 1),
    ("rout", c_void_p, 1), ("roff", c_int, 1), ("rincr", c_int, 1),
)


class RenderSettings(Settings):
    soundfont: Path = Field(Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), description="General MIDI soundfont (.sf2)")
    sample_rate: int = Field(SAMPLE_RATE, gt=0, description="output sample rate in Hz")
    program: int = Field(0, ge=0, le=127, description="General MIDI program: 0 acoustic grand piano, 4 electric piano, 19 church organ, ...")
    gain: float = Field(0.2, gt=0.0, le=10.0, description="FluidSynth master gain (only matters with normalisation off)")
    target_rms_dbfs: float | None = Field(-20.0, le=0.0, description="loudness target as RMS in dBFS; None keeps the synth's level (still under the ceiling)")
    peak_ceiling_dbfs: float = Field(-1.0, le=0.0, description="no sample ever goes above this level")
    tail_seconds: float = Field(1.5, ge=0.0, description="audio kept after the last note ends, for release and reverb")


class _Synth:
    """One FluidSynth instance with one soundfont loaded, rendering into float buffers."""

    def __init__(self, soundfont: Path, sample_rate: int):
        self.soundfont = soundfont
        self.sample_rate = sample_rate
        self.synth = fluidsynth.Synth(gain=0.2, samplerate=float(sample_rate))
        self.sfid = self.synth.sfload(str(soundfont))
        if self.sfid < 0:
            self.synth.delete()
            raise CovermillError(f"{soundfont}: FluidSynth cannot load this soundfont; install fluid-soundfont-gm or set render.soundfont to a working .sf2 file.")
        self.written = 0  # samples rendered since creation, to find the block phase

    def write(self, left: np.ndarray, right: np.ndarray, start: int, count: int) -> None:
        if count > 0:
            _write_float(self.synth.synth, count, left.ctypes.data, start, 1, right.ctypes.data, start, 1)
            self.written += count

    def reset(self, program: int, gain: float) -> None:
        """Silence everything the previous render left: notes, controllers, and the reverb's tail."""
        self.synth.system_reset()
        # system_reset only releases the voices, which ring on, as does the reverb: play them out.
        block = int(self.sample_rate * _DRAIN_BLOCK_SECONDS)
        left, right = np.zeros(block, np.float32), np.zeros(block, np.float32)
        for _ in range(int(_DRAIN_MAX_SECONDS / _DRAIN_BLOCK_SECONDS)):
            self.write(left, right, 0, block)
            if max(np.abs(left).max(), np.abs(right).max()) < SILENCE / 10:
                break
        self.write(left, right, 0, -self.written % _FLUID_BLOCK)
        self.synth.setting("synth.gain", float(gain))
        self.synth.program_select(0, self.sfid, 0, program)


# One synthesizer per process, one render at a time: a render owns the synth from reset to the
# last sample (Prefect may run tasks in threads).
_render_lock = threading.Lock()
_cached: _Synth | None = None


def check_soundfont(soundfont: Path) -> None:
    """Every render needs the soundfont: a run checks it before its first song, and each render again."""
    if not Path(soundfont).is_file():
        raise CovermillError(f"{soundfont}: soundfont not found; install fluid-soundfont-gm or set render.soundfont in config.yaml.")


def _synth(soundfont: Path, sample_rate: int) -> _Synth:
    """The process's synthesizer for this soundfont and rate (call with _render_lock held)."""
    global _cached
    soundfont = Path(soundfont)
    check_soundfont(soundfont)
    if _cached is None or _cached.soundfont != soundfont or _cached.sample_rate != sample_rate:
        if _cached is not None:
            _cached.synth.delete()
            _cached = None
        _cached = _Synth(soundfont, sample_rate)
    return _cached


# What happens at one sample, in this order: the pedal lifts, keys are released, the pedal goes
# down, keys are struck. A note re-struck right as it ends is not cut by its own note-off, and a
# pedal changed at a chord change catches the new chord, not the old one.
PEDAL_UP, NOTE_OFF, PEDAL_DOWN, NOTE_ON = range(4)


def _events(notes: list[Note], sample_rate: int, pedal: tuple[tuple[float, float], ...] = ()) -> list[tuple[int, int, int, int]]:
    """(sample, kind, pitch, velocity) in time order; kinds as above (pitch and velocity 0 for the pedal)."""
    events = []
    for note in notes:
        start = round(note.start * sample_rate)
        end = max(round(note.end * sample_rate), start + 1)
        events.append((start, NOTE_ON, note.pitch, max(1, min(127, note.velocity))))
        events.append((end, NOTE_OFF, note.pitch, 0))
    for down, up in pedal:
        events.append((round(down * sample_rate), PEDAL_DOWN, 0, 0))
        events.append((max(round(up * sample_rate), round(down * sample_rate) + 1), PEDAL_UP, 0, 0))
    events.sort()
    return events


def render_notes(notes: list[Note], settings: RenderSettings, drop_shorter_than: float = 0.0,
                 pedal: tuple[tuple[float, float], ...] = ()) -> np.ndarray:
    """Mono float32 samples of `notes` played on `settings.program`, normalised; silence if no notes.

    Notes shorter than `drop_shorter_than` seconds are left out (the AMT-APC protocol drops notes
    under 0.08 s before rendering). `pedal` holds the sustain pedal down over each (down, up)
    interval, as controller 64 does on a piano. The result lasts until the last note ends (or the
    pedal lifts) plus the tail.
    """
    notes = [n for n in notes if n.end - n.start >= drop_shorter_than and 0 <= n.pitch <= 127]
    rate = settings.sample_rate
    tail = round(settings.tail_seconds * rate)
    if not notes:
        return np.zeros(tail, dtype=np.float32)
    events = _events(notes, rate, pedal)
    total = events[-1][0] + tail
    left, right = np.zeros(total, np.float32), np.zeros(total, np.float32)
    with _render_lock:
        synth = _synth(settings.soundfont, rate)
        synth.reset(settings.program, settings.gain)
        position = 0
        for sample, kind, pitch, velocity in events:
            synth.write(left, right, position, sample - position)
            position = sample
            if kind == NOTE_ON:
                synth.synth.noteon(0, pitch, velocity)
            elif kind == NOTE_OFF:
                synth.synth.noteoff(0, pitch)
            else:
                synth.synth.cc(0, PEDAL, 127 if kind == PEDAL_DOWN else 0)
        synth.write(left, right, position, total - position)
    mono = (left + right) * np.float32(0.5)
    return normalise(mono, settings.target_rms_dbfs, settings.peak_ceiling_dbfs)


def db_to_amplitude(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def normalise(samples: np.ndarray, target_rms_dbfs: float | None, peak_ceiling_dbfs: float) -> np.ndarray:
    """Scale to the RMS target, or less where the peak would pass the ceiling; silence stays silence.

    With no target the level is kept, and only lowered where the peak passes the ceiling.
    """
    samples = np.asarray(samples, dtype=np.float32)
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    if peak < SILENCE:
        return np.zeros_like(samples)
    if target_rms_dbfs is None:
        wanted = 1.0
    else:
        wanted = db_to_amplitude(target_rms_dbfs) / float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return samples * np.float32(min(wanted, db_to_amplitude(peak_ceiling_dbfs) / peak))


def render_midi(midi_path: Path, target_audio: Path, settings: RenderSettings, drop_shorter_than: float = 0.0) -> Path:
    """Render a MIDI file to `target_audio` (FLAC or WAV by suffix), atomically."""
    piece = read_piece(Path(midi_path))
    samples = render_notes(piece.notes, settings, drop_shorter_than, piece.pedal)
    return write_audio(Path(target_audio), samples, settings.sample_rate)


def candidate_render_fingerprint(midi: Path, settings: RenderSettings) -> str:
    """What a candidate's render depends on: its notes (the MIDI's bytes) and the render settings."""
    return fingerprint("render", file_sha256(midi), settings, PROTOCOL.min_note_seconds)


def winner_fingerprint(winner: Candidate, settings: RenderSettings) -> str:
    """What winner.mid and winner.flac depend on: the pick, its notes and the render settings."""
    return fingerprint("winner", winner.id, file_sha256(winner.midi), settings)


def render_winner(midi_path: Path, target_audio: Path, settings: RenderSettings) -> Path:
    """The winner as the video will play it: every note kept, nothing dropped."""
    return render_midi(midi_path, target_audio, settings, drop_shorter_than=0.0)


@stage_task("render")
def render_candidates(song: Song, candidates: list[Candidate], out_dir: Path, settings: RenderSettings) -> dict[str, Path]:
    """Render each candidate for ranking (notes under the protocol's minimum dropped).

    Audio made from the same notes with the same settings is kept, so a killed run resumes where
    it stopped and a changed candidate is the only one rendered again; candidates whose MIDI is
    byte-identical (styles that changed nothing on a sparse song) share one render, so they cost
    nothing twice and score exactly alike.
    """
    folder = SongFolder(out_dir, song.id)
    fingerprints = Fingerprints.of(folder)
    logger = stage_logger("render")
    audio: dict[str, Path] = {}
    by_content: dict[str, Path] = {}
    for number, candidate in enumerate(candidates, start=1):
        target = folder.candidate_audio(candidate.id)
        made_with = candidate_render_fingerprint(candidate.midi, settings)
        twin = by_content.setdefault(made_with, target)
        if fingerprints.fresh(target, made_with):
            logger.info("render %d/%d: %s already rendered", number, len(candidates), candidate.id)
        elif twin != target:
            with fingerprints.making(target, made_with):
                copy_atomic(twin, target)
            logger.info("render %d/%d: %s has the same notes as %s; render reused", number, len(candidates), candidate.id, twin.stem)
        else:
            with fingerprints.making(target, made_with):
                render_midi(candidate.midi, target, settings, drop_shorter_than=PROTOCOL.min_note_seconds)
            logger.info("render %d/%d: %s -> %s", number, len(candidates), candidate.id, target.name)
        audio[candidate.id] = target
    return audio


@stage_task("render-winner")
def render_winner_task(song: Song, winner: Candidate, out_dir: Path, settings: RenderSettings) -> Path:
    """Install the winner's MIDI as the song's winner.mid and render all of it to winner.flac."""
    folder = SongFolder(out_dir, song.id)
    copy_atomic(winner.midi, folder.winner_midi)
    render_winner(folder.winner_midi, folder.winner_audio, settings)
    stage_logger("render").info("winner %s rendered -> %s", winner.id, folder.winner_audio)
    return folder.winner_audio
