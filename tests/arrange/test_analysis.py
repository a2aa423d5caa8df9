"""The song analysis on real music with ground truth: Debian's planetblupi recordings were rendered
from the MIDI files beside them, whose tempo map, time signature and notes are the truth (all ten
are 4/4 at one tempo; music007 swings its eighths onto the beat's last third).

Figures measured on these 25 s excerpts (the test prints them with -s): beat F-measure 0.99 .. 1.0,
meter 4 on all four songs, downbeats right on 3 of the 4 (music004's intro changes harmony on the
fourth beat and the analysis puts its bar lines a beat early), melody within a semitone of the
score's tune on 77 % of the frames both call voiced.
"""

from __future__ import annotations

from pathlib import Path

import mir_eval
import numpy as np
import pretty_midi
import pytest
import soundfile

from covermill.models.notes import Note
from covermill.tasks.arrange.analysis import SongAnalysis, analyse, analyse_samples, load_analysis, save_analysis
from covermill.tasks.arrange.beat_tracking import on_the_beat
from covermill.tasks.arrange.chords import parse_chord, pitch_classes
from covermill.tasks.arrange.meter import bar_phase, subdivision
from covermill.tasks.arrange.spectra import Frames
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.cover.render import RenderSettings, render_notes

from conftest import MUSIC_DIR, cut_clip

RATE = 44100
START = 20.0  # seconds into each recording (conftest's CLIPS start there too)
SECONDS = 25.0


@pytest.fixture(scope="module")
def songs(clips, tmp_path_factory) -> dict[str, Path]:
    """recording -> a 25 s excerpt: the three shared clips, and music003, whose MIDI names its tune's tracks "Melody"."""
    lead = cut_clip(MUSIC_DIR / "music003.ogg", START, SECONDS, tmp_path_factory.mktemp("lead") / "music003.ogg")
    return {"music004": clips["song_a"], "music007": clips["song_b"], "music009": clips["song_c"], "music003": lead}


@pytest.fixture(scope="module")
def analyses(songs) -> dict[str, SongAnalysis]:
    return {name: analyse(path) for name, path in songs.items()}


def score_of(recording: str) -> pretty_midi.PrettyMIDI:
    return pretty_midi.PrettyMIDI(str(MUSIC_DIR / f"{recording}.mid"))


def excerpt(times: np.ndarray) -> np.ndarray:
    """Score times (n,) moved to the excerpt's clock, those inside it."""
    moved = np.asarray(times) - START
    return moved[(moved >= 0) & (moved < SECONDS)]


def downbeats_found(grid_downbeats: np.ndarray, true_downbeats: np.ndarray, beats: np.ndarray) -> float:
    """Share of the score's bar lines within the tracked beats that have a tracked downbeat within a quarter beat."""
    period = float(np.median(np.diff(beats)))
    inside = true_downbeats[(true_downbeats > beats[0] - period / 2) & (true_downbeats < beats[-1] + period / 2)]
    return float(np.mean(np.min(np.abs(inside[:, None] - grid_downbeats[None, :]), axis=1) < period / 4))


def score_subdivision(midi: pretty_midi.PrettyMIDI) -> int:
    """3 when the score's off-beat notes sit mostly on thirds of the beat, else 4 (from the ticks: exact)."""
    ticks = np.array([midi.time_to_tick(n.start) for i in midi.instruments for n in i.notes]) % midi.resolution
    offset = np.bincount(ticks).argmax()  # planetblupi's notes start a few ticks after the beat
    where = ((ticks - offset) % midi.resolution) / midi.resolution
    off_beat = where[(where > 0.05) & (where < 0.95)]
    thirds = np.mean(np.min(np.abs(off_beat[:, None] - np.array([1 / 3, 2 / 3])[None, :]), axis=1) < 0.02)
    return 3 if thirds > 0.5 else 4


RECORDINGS = ["music004", "music007", "music009", "music003"]


@pytest.mark.parametrize("recording", RECORDINGS)
def test_beats_meter_and_subdivision_follow_the_score(analyses, recording):
    grid, midi = analyses[recording].grid, score_of(recording)
    reference = excerpt(midi.get_beats())
    f_measure = mir_eval.beat.f_measure(mir_eval.beat.trim_beats(reference), mir_eval.beat.trim_beats(grid.times))
    print(f"{recording}: beat F {f_measure:.3f}, {grid.beats_per_bar} beats a bar, {grid.steps_per_beat} steps a beat")
    assert grid.source == "audio"
    # measured 0.986 .. 1.0 here (mir_eval's +-70 ms window, the score's own tempo: no octave allowance);
    # over 50 windows of the ten songs the tracker is right on 38, on the off-beats on most others
    assert f_measure >= 0.95
    assert analyses[recording].tempo == pytest.approx(midi.get_tempo_changes()[1][0], rel=0.02)
    assert grid.beats_per_bar == midi.time_signature_changes[-1].numerator == 4
    assert grid.steps_per_beat == score_subdivision(midi)  # 3 for music007's swing, 4 for the rest


def test_downbeats_fall_on_the_scores_bar_lines(analyses):
    found = {}
    for recording in RECORDINGS:
        grid = analyses[recording].grid
        found[recording] = downbeats_found(grid.downbeats, excerpt(score_of(recording).get_downbeats()), grid.times)
    print("downbeats found:", found)
    # measured 1.0, 1.0, 1.0 and 0.0 (music004: a beat early, see the module docstring); over 38 windows of
    # 25 s with the beats right, 36 had most bar lines right
    assert sum(share >= 0.8 for share in found.values()) >= 3


def waltz(recording: str, first_bar: int, bars: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(samples, beats, downbeats) of a 3/4 piece made from a 4/4 score: every bar loses its fourth beat
    (notes starting there dropped, notes crossing it cut), rendered with every instrument and the drums."""
    midi = score_of(recording)
    period = 60.0 / midi.get_tempo_changes()[1][0]
    lead = 20  # ticks: these scores' notes start this far after the beat
    out = pretty_midi.PrettyMIDI(initial_tempo=60.0 / period)
    for instrument in midi.instruments:
        cut = pretty_midi.Instrument(program=instrument.program, is_drum=instrument.is_drum)
        for note in instrument.notes:
            beat, end = ((midi.time_to_tick(t) - lead) / midi.resolution for t in (note.start, note.end))
            bar = int(np.floor(beat / 4 + 1e-6))
            if first_bar <= bar < first_bar + bars and beat - 4 * bar < 3 - 1e-6:
                begin = 3 * (bar - first_bar) + beat - 4 * bar
                stop = 3 * (bar - first_bar) + min(end - 4 * bar, 3.0)
                cut.notes.append(pretty_midi.Note(note.velocity, note.pitch, begin * period, stop * period))
        out.instruments.append(cut)
    samples = out.fluidsynth(fs=RATE, synthesizer=str(RenderSettings().soundfont)).astype(np.float32)
    beats = np.arange(3 * bars + 1) * period
    return samples / np.abs(samples).max() * 0.9, beats, beats[::3]


def test_a_waltz_is_counted_in_three():
    """No planetblupi song is in three, so one is made from music004's score. Over 30 such waltzes
    (three stretches of each song) the meter came out 3 on 11 of the 14 whose beats were tracked right."""
    samples, beats, downbeats = waltz("music004", first_bar=10, bars=10)
    grid = analyse_samples(samples, melody=False).grid
    f_measure = mir_eval.beat.f_measure(mir_eval.beat.trim_beats(beats), mir_eval.beat.trim_beats(grid.times))
    assert f_measure >= 0.9  # measured 0.98
    assert grid.beats_per_bar == 3
    assert downbeats_found(grid.downbeats, downbeats, grid.times) >= 0.8  # measured 1.0


def lead_line(midi: pretty_midi.PrettyMIDI, times: np.ndarray) -> np.ndarray:
    """(n,) the highest pitch the score's Melody tracks sound at each excerpt time (n,), NaN where they rest."""
    line = np.full(len(times), np.nan)
    for instrument in midi.instruments:
        if instrument.name.strip().startswith("Melody"):
            for note in instrument.notes:
                first, last = np.searchsorted(times, [note.start - START, note.end - START])
                line[first:last] = np.fmax(line[first:last], note.pitch)
    return line


def test_the_melody_follows_the_scores_tune(analyses):
    analysis = analyses["music003"]
    truth = lead_line(score_of("music003"), analysis.melody_times)
    both = ~np.isnan(truth) & ~np.isnan(analysis.melody)
    within = float(np.mean(np.abs(analysis.melody[both] - truth[both]) <= 1.0))
    print(f"melody: {both.mean():.0%} of the frames voiced in both, {within:.0%} of those within a semitone")
    assert analysis.melody_times[-1] == pytest.approx(SECONDS, abs=0.1)
    assert both.mean() >= 0.4  # measured 0.56
    assert within >= 0.65  # measured 0.77 (Melodia's octave slips make most of the rest)
    sampled = analysis.melody_at(np.array([-1.0, 5.0, SECONDS + 5]))
    assert np.isnan(sampled[0]) and np.isnan(sampled[2])


PROGRESSION = {"C": (60, 64, 67), "Am": (57, 60, 64), "F": (53, 57, 60), "G": (55, 59, 62),
               "Dm": (50, 53, 57), "E": (52, 56, 59), "Bb": (58, 62, 65), "F#m": (54, 57, 61)}


def test_chords_of_rendered_triads_are_named():
    """Eight triads, two beats each at 100 BPM, twice, on the piano with the root doubled below."""
    period, truth, notes = 0.6, [], []
    for number, (name, pitches) in enumerate(list(PROGRESSION.items()) * 2):
        start = 2 * number * period
        notes += [Note(start, start + 2 * period - 0.05, p, 80) for p in (*pitches, pitches[0] - 12)]
        truth.append((start, name))
    analysis = analyse_samples(render_notes(notes, RenderSettings()), melody=False)
    beats = analysis.grid.times
    sounding = [next(name for start, name in reversed(truth) if start <= beat + 0.1) for beat in beats[:-1]]
    right = np.mean([label == name for label, name in zip(analysis.chords, sounding)])
    print(f"chords: {right:.0%} of {len(sounding)} beats named right")
    assert len(analysis.chords) == len(beats)
    assert right >= 0.85  # measured 31 of 32
    middle = float(beats[len(beats) // 2])
    label = analysis.chord_label_at(middle + 0.1)
    assert analysis.chord_at(middle + 0.1) == parse_chord(label)
    assert analysis.chord_at(beats[0] - 0.3) is None


def test_silence_gets_a_steady_grid_and_notes_give_theirs(tmp_path):
    silence = tmp_path / "silence.wav"
    soundfile.write(str(silence), np.zeros(10 * RATE, dtype=np.float32), RATE)
    analysis = analyse(silence)
    assert analysis.grid.source == "fixed"
    assert analysis.grid.tempo == pytest.approx(120.0)
    assert analysis.grid.times[-1] >= 10.0
    assert set(analysis.chords) == {"N"} and analysis.key == ""
    assert np.all(np.isnan(analysis.melody))
    steady = [Note(0.75 * i, 0.75 * i + 0.3, 60 + (i % 4 == 0) * 7, 90 if i % 4 == 0 else 60) for i in range(12)]
    from_notes = analyse(silence, steady, melody=False).grid
    assert from_notes.source == "notes"
    assert from_notes.tempo == pytest.approx(80.0, rel=0.02)


def test_a_click_track_gives_its_tempo():
    bpm, seconds = 96.0, 20.0
    samples = np.zeros(int(seconds * RATE), dtype=np.float32)
    click = (np.sin(2 * np.pi * 1000 * np.arange(441) / RATE) * np.exp(-np.arange(441) / 80)).astype(np.float32)
    for beat in np.arange(0.5, seconds - 0.1, 60.0 / bpm):
        samples[int(beat * RATE): int(beat * RATE) + len(click)] += click
    analysis = analyse_samples(samples, melody=False)
    assert analysis.grid.source == "audio"
    assert analysis.tempo == pytest.approx(bpm, rel=0.01)
    assert analysis.grid.tempo == pytest.approx(bpm, rel=0.01)
    assert analysis.grid.beats_per_bar == 4 and analysis.grid.steps_per_beat == 4  # nothing says otherwise


def test_the_analysis_survives_a_round_trip(analyses, tmp_path):
    analysis = analyses["music003"]
    path = SongFolder(tmp_path, "song").analysis
    assert path.name == "analysis.json"
    save_analysis(analysis, path)
    back = load_analysis(path)
    assert back is not None
    assert np.allclose(back.grid.times, analysis.grid.times, atol=1e-6)
    assert (back.grid.beats_per_bar, back.grid.first_downbeat, back.grid.steps_per_beat, back.grid.source) == (
        analysis.grid.beats_per_bar, analysis.grid.first_downbeat, analysis.grid.steps_per_beat, analysis.grid.source)
    assert back.chords == analysis.chords and back.key == analysis.key
    assert back.tempo == pytest.approx(analysis.tempo, abs=1e-3)
    assert np.array_equal(np.isnan(back.melody), np.isnan(analysis.melody))
    assert np.allclose(back.melody, analysis.melody, atol=0.005, equal_nan=True)
    assert load_analysis(tmp_path / "missing.json") is None
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    assert load_analysis(tmp_path / "broken.json") is None


def test_chord_labels_name_their_pitch_classes():
    assert pitch_classes("C") == {0, 4, 7}
    assert pitch_classes("Am") == {9, 0, 4}
    assert pitch_classes("G7") == {7, 11, 2, 5}
    assert pitch_classes("Bbmaj7") == {10, 2, 5, 9}
    assert pitch_classes("F#m") == {6, 9, 1}
    assert pitch_classes("N") == frozenset()
    assert parse_chord("Ebm7") == (3, frozenset({3, 6, 10, 1}))
    with pytest.raises(ValueError):
        pitch_classes("H")
    with pytest.raises(ValueError):
        pitch_classes("Cblues")


def test_subdivision_counts_thirds_against_quarters():
    beats = np.arange(40) * 0.5
    straight = np.concatenate([beats[:-1] + 0.5 * f for f in (0, 0.25, 0.5, 0.75)])
    swung = np.concatenate([beats[:-1] + 0.5 * f for f in (0, 2 / 3)])
    assert subdivision(straight, beats) == 4
    assert subdivision(swung, beats) == 3
    assert subdivision(swung - 0.03, beats) == 3  # an onset detector's lag is taken out
    assert subdivision(swung[:8], beats) == 4  # too few onsets to tell


def test_bar_phase_finds_where_the_change_falls():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.3, 48)
    in_three = np.where(np.arange(48) % 3 == 1, 1.0, 0.0) + noise
    in_four = np.where(np.arange(48) % 4 == 2, 1.0, 0.0) + noise
    assert bar_phase(in_three, in_three) == (3, 1)
    assert bar_phase(in_four, in_four) == (4, 2)
    assert bar_phase(np.zeros(48), np.zeros(48)) == (4, 0)  # unsure: four, from the first beat


def test_beats_on_the_off_beats_move_by_half_a_beat():
    """Chords that change at 0.25, 0.75, ... s: beats tracked at 0, 0.5, ... are off the harmony."""
    times = np.arange(0, 10, 1024 / RATE)
    hpcp = np.zeros((len(times), 36), dtype=np.float32)
    chord = np.floor((times - 0.25) / 0.5).astype(int) % 2  # two alternating chords
    hpcp[chord == 0, 0] = hpcp[chord == 1, 15] = 1.0
    frames = Frames(times, hpcp, np.zeros(len(times)))
    beats = np.arange(0, 9.6, 0.5)
    assert np.allclose(on_the_beat(beats, frames, 10.0)[:3], [0.25, 0.75, 1.25])
    aligned = on_the_beat(beats + 0.25, frames, 10.0)
    assert np.allclose(aligned, beats + 0.25)
