"""render: FluidSynth through one cached synthesizer, normalised, no leaks between renders."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from covermill.models.notes import Note
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import read_midi, write_midi
from covermill.tasks.core.records import Candidate, Song
from covermill.tasks.cover.render import (
    RenderSettings,
    normalise,
    render_candidates,
    render_midi,
    render_notes,
    render_winner,
    render_winner_task,
)
from covermill.tasks.rank.qmax import PROTOCOL

RATE = 44100


def excerpt(notes: list[Note], start: float, seconds: float) -> list[Note]:
    """The notes starting inside [start, start + seconds), shifted to 0 and cut at the end."""
    return [
        Note(n.start - start, min(n.end, start + seconds) - start, n.pitch, n.velocity)
        for n in notes if start <= n.start < start + seconds - 0.01
    ]


@pytest.fixture(scope="module")
def score_notes(reference_midis) -> list[Note]:
    """25 s of song_a's real score (the stretch its clip was cut from)."""
    return excerpt(read_midi(reference_midis["song_a"]), 20.0, 25.0)


def dbfs(value: float) -> float:
    return 20 * math.log10(value)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def test_render_lasts_until_the_last_note_plus_the_tail_and_meets_the_levels(score_notes):
    settings = RenderSettings(tail_seconds=1.0)
    samples = render_notes(score_notes, settings)
    last_end = max(n.end for n in score_notes)
    assert len(samples) == round(last_end * RATE) + RATE
    assert samples.dtype == np.float32
    peak = float(np.abs(samples).max())
    assert dbfs(peak) <= settings.peak_ceiling_dbfs + 1e-3
    # loud: either at the loudness target, or as loud as the peak ceiling allows
    at_target = abs(dbfs(rms(samples)) - settings.target_rms_dbfs) < 0.05
    at_ceiling = abs(dbfs(peak) - settings.peak_ceiling_dbfs) < 0.05
    assert at_target or at_ceiling
    assert dbfs(rms(samples)) > -30


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """RMS of the difference over RMS of `a`: 0 for identical, about 1.4 for unrelated signals."""
    return rms(a - b) / rms(a)


def spectral_balance(samples: np.ndarray) -> np.ndarray:
    """Share of the energy in each half-octave band from 100 Hz to 12.8 kHz, in dB: a timbre's outline."""
    frames = samples[: len(samples) // 4096 * 4096].reshape(-1, 4096) * np.hanning(4096)
    power = (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(4096, 1 / RATE)
    edges = 100 * 2 ** np.arange(0, 7.01, 0.5)
    return np.array([10 * np.log10(power[(freqs >= lo) & (freqs < hi)].sum() / power.sum()) for lo, hi in zip(edges[:-1], edges[1:])])


def test_same_notes_render_alike_and_another_program_sounds_different(score_notes):
    piano = render_notes(score_notes, RenderSettings())
    again = render_notes(score_notes, RenderSettings())
    organ = render_notes(score_notes, RenderSettings(program=19))  # GM church organ
    assert len(again) == len(organ) == len(piano)
    # the same up to the reverb's running modulation
    assert relative_difference(piano, again) < 0.1
    assert np.abs(spectral_balance(piano) - spectral_balance(again)).max() < 1.5
    # same notes, other timbre
    assert np.abs(spectral_balance(piano) - spectral_balance(organ)).max() > 5.0


def test_consecutive_renders_do_not_leak():
    loud_chord = [Note(0.0, 0.6, pitch, 127) for pitch in range(48, 72, 2)]
    late_note = [Note(2.0, 2.5, 60, 60)]
    settings = RenderSettings(tail_seconds=0.0)  # the chord is cut mid-ring: its reverb is still loud
    alone = render_notes(late_note, settings)
    render_notes(loud_chord, settings)
    after_chord = render_notes(late_note, settings)
    assert relative_difference(alone, after_chord) < 0.1
    # before its note starts, the second render holds nothing of the chord
    assert float(np.abs(after_chord[: int(1.9 * RATE)]).max()) < 1e-4
    assert float(np.abs(after_chord).max()) > 0.1


def test_notes_shorter_than_the_limit_are_dropped():
    short = [Note(i * 0.5, i * 0.5 + 0.05, 60 + i, 100) for i in range(8)]
    kept = [Note(5.0, 6.0, 64, 100)]
    dropped = render_notes(short + kept, RenderSettings(), drop_shorter_than=0.08)
    assert float(np.abs(dropped[: int(4.9 * RATE)]).max()) < 1e-4
    full = render_notes(short + kept, RenderSettings())
    assert float(np.abs(full[: int(4.9 * RATE)]).max()) > 0.05


def test_normalise_reaches_the_target_without_passing_the_ceiling():
    t = np.arange(RATE) / RATE
    sine = (0.01 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    loud = normalise(sine, -20.0, -1.0)
    assert dbfs(rms(loud)) == pytest.approx(-20.0, abs=0.01)
    # one click in silence: the peak ceiling wins over the loudness target
    click = np.zeros(RATE, np.float32)
    click[100] = 0.001
    limited = normalise(click, -20.0, -1.0)
    assert dbfs(float(np.abs(limited).max())) == pytest.approx(-1.0, abs=0.01)
    assert dbfs(rms(limited)) < -20.0
    # no target: the level stays, unless the peak passes the ceiling
    assert np.array_equal(normalise(sine, None, -1.0), sine)
    assert dbfs(float(np.abs(normalise(sine * 200, None, -1.0)).max())) == pytest.approx(-1.0, abs=0.01)
    silence = np.zeros(RATE, np.float32)
    assert not normalise(silence, -20.0, -1.0).any()
    assert not render_notes([], RenderSettings()).any()


def test_missing_soundfont_is_one_clear_sentence(tmp_path):
    with pytest.raises(CovermillError, match="install fluid-soundfont-gm or set render.soundfont"):
        render_notes([Note(0.0, 1.0, 60, 100)], RenderSettings(soundfont=tmp_path / "missing.sf2"))


def test_render_midi_writes_flac_atomically(tmp_path, score_notes):
    midi = write_midi(score_notes, tmp_path / "cover.mid")
    target = render_midi(midi, tmp_path / "out" / "cover.flac", RenderSettings())
    samples, rate = soundfile.read(str(target))
    assert rate == RATE
    assert soundfile.info(str(target)).format == "FLAC"
    assert len(samples) / RATE == pytest.approx(max(n.end for n in score_notes) + 1.5, abs=0.01)
    assert [p.name for p in target.parent.iterdir()] == ["cover.flac"]  # no temporary left behind


def make_song(tmp_path: Path) -> Song:
    return Song(id="song0", source="x.ogg", source_id="file:x", title="X", duration=10.0,
                original=tmp_path / "x.ogg", audio=tmp_path / "audio.wav")


def test_render_candidates_renders_each_once_and_keeps_finished_audio(tmp_path):
    out = tmp_path / "out"
    folder = SongFolder(out, "song0")
    flicks = [Note(i * 0.5, i * 0.5 + 0.05, 60, 100) for i in range(6)]  # all under the 0.08 s limit
    melody = [Note(i * 0.5, i * 0.5 + 0.4, 60 + i, 100) for i in range(6)]
    candidates = [
        Candidate(id="flicks", generator="test", style="raw", midi=write_midi(flicks, tmp_path / "flicks.mid")),
        Candidate(id="melody", generator="test", style="raw", midi=write_midi(melody, tmp_path / "melody.mid")),
    ]
    audio = render_candidates.fn(make_song(tmp_path), candidates, out, RenderSettings())
    assert audio == {c.id: folder.candidate_audio(c.id) for c in candidates}
    flick_audio, _ = soundfile.read(str(audio["flicks"]))
    assert not flick_audio.any()  # the protocol dropped every note
    assert PROTOCOL.min_note_seconds == 0.08
    melody_audio, _ = soundfile.read(str(audio["melody"]))
    assert np.abs(melody_audio).max() > 0.1

    stamps = {name: path.stat().st_mtime_ns for name, path in audio.items()}
    audio["melody"].write_bytes(b"kept")  # a finished file is never rendered again
    again = render_candidates.fn(make_song(tmp_path), candidates, out, RenderSettings())
    assert again == audio
    assert audio["melody"].read_bytes() == b"kept"
    assert audio["flicks"].stat().st_mtime_ns == stamps["flicks"]


def test_render_winner_keeps_every_note(tmp_path):
    flicks = [Note(i * 0.5, i * 0.5 + 0.05, 60 + i, 100) for i in range(6)]
    midi = write_midi(flicks, tmp_path / "winner.mid")
    target = render_winner(midi, tmp_path / "winner.flac", RenderSettings())
    samples, _ = soundfile.read(str(target))
    assert np.abs(samples).max() > 0.1


def test_render_winner_task_installs_the_midi_and_renders_it(tmp_path):
    melody = [Note(i * 0.5, i * 0.5 + 0.4, 60 + i, 100) for i in range(6)]
    winner = Candidate(id="melody", generator="test", style="raw", midi=write_midi(melody, tmp_path / "melody.mid"))
    out = tmp_path / "out"
    audio = render_winner_task.fn(make_song(tmp_path), winner, out, RenderSettings())
    folder = SongFolder(out, "song0")
    assert audio == folder.winner_audio
    assert folder.winner_midi.read_bytes() == winner.midi.read_bytes()
    samples, _ = soundfile.read(str(audio))
    assert len(samples) / RATE == pytest.approx(2.9 + 1.5, abs=0.01)


def test_candidates_with_the_same_notes_share_one_render(tmp_path):
    out = tmp_path / "out"
    melody = [Note(i * 0.5, i * 0.5 + 0.4, 60 + i, 100) for i in range(6)]
    other = [Note(i * 0.5, i * 0.5 + 0.4, 72 - i, 90) for i in range(6)]
    candidates = [
        Candidate(id="faithful", generator="test", style="faithful", midi=write_midi(melody, tmp_path / "a.mid")),
        Candidate(id="folded", generator="test", style="folded", midi=write_midi(melody, tmp_path / "b.mid")),
        Candidate(id="other", generator="test", style="other", midi=write_midi(other, tmp_path / "c.mid")),
    ]
    audio = render_candidates.fn(make_song(tmp_path), candidates, out, RenderSettings())
    assert audio["faithful"].read_bytes() == audio["folded"].read_bytes()  # same notes: one render, copied
    assert audio["other"].read_bytes() != audio["faithful"].read_bytes()


def test_the_sustain_pedal_holds_a_released_key():
    """A key released at 0.2 s rings on while the pedal is down (until 1.5 s) and dies without it."""
    settings = RenderSettings(target_rms_dbfs=None)  # keep the synth's level: the two renders compare as they are
    staccato = [Note(0.0, 0.2, 60, 100)]
    dry = render_notes(staccato, settings)
    pedalled = render_notes(staccato, settings, pedal=((0.0, 1.5),))
    rate = settings.sample_rate

    def level(samples, start, end):
        part = samples[int(start * rate):int(end * rate)]
        return float(np.sqrt(np.mean(np.square(part, dtype=np.float64))))

    assert level(pedalled, 0.8, 1.2) > 10 * level(dry, 0.8, 1.2)  # still sounding at 1 s
    assert level(pedalled, 0.0, 0.15) == pytest.approx(level(dry, 0.0, 0.15), rel=0.05)  # the strike itself is the same
    assert len(pedalled) > len(dry)  # the render lasts until the pedal lifts, plus the tail


def test_loading_fluidsynth_writes_nothing_to_stdout_even_under_ci():
    """pyfluidsynth prints where it found the library when $CI is set; our stdout must stay ours."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import covermill.tasks.cover.render as r; print(r.fluidsynth.__name__)"],
        env={**os.environ, "CI": "true"}, capture_output=True, text=True, check=True,
    )
    assert loaded.stdout == "fluidsynth\n"
