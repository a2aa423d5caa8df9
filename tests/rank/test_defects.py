"""defects: repeated-note heuristics on real and deliberately broken note lists."""

from __future__ import annotations

import math

import pytest

from covermill.models.generator import load_generator
from covermill.models.notes import Note
from covermill.tasks.core.audio import decode_to_wav
from covermill.tasks.core.midi import read_midi, write_midi
from covermill.tasks.rank.defects import measure_defects, note_name
from covermill.tasks.rank.ranking import RankSettings, reject_reasons

CLIP = 25.0


@pytest.fixture(scope="module")
def transcription(clips, tmp_path_factory) -> list[Note]:
    """basic-pitch's notes for song_a's clip: a real, imperfect cover candidate."""
    wav = decode_to_wav(clips["song_a"], tmp_path_factory.mktemp("defects") / "song_a.wav")
    return load_generator("basic-pitch").transcribe(wav)


def banging(tmp_path) -> list[Note]:
    """B3 struck every 0.2 s for the whole clip, through a MIDI file like any candidate."""
    notes = [Note(i * 0.2, i * 0.2 + 0.15, 59, 100) for i in range(int(CLIP / 0.2))]
    return read_midi(write_midi(notes, tmp_path / "banging.mid"))


def test_banging_one_note_is_measured_and_flagged(tmp_path):
    defects = measure_defects(banging(tmp_path), CLIP)
    assert defects["longest_run"] == 125
    assert defects["longest_run_pitch"] == 59
    assert defects["longest_run_share"] > 0.95
    assert defects["repeat_share"] > 0.95
    assert defects["pitch_class_entropy"] == 0.0
    assert defects["notes_per_second"] == pytest.approx(5.0)
    assert defects["longest_run_dominance"] == 1.0
    reasons = reject_reasons(defects, qmax=1.0, settings=RankSettings())
    assert any("struck 125 times in a row (B3, 100% of the song)" in r for r in reasons)


def test_a_real_transcription_is_not_flagged(transcription):
    defects = measure_defects(transcription, CLIP)
    assert defects["notes"] == len(transcription) > 16
    assert defects["longest_run_share"] < RankSettings().max_run_share
    assert defects["pitch_class_entropy"] > 1.5
    # a raw transcription is no piano part yet (13 keys at once here): the polyphony limit judges arrangements
    assert reject_reasons(defects, qmax=0.1, settings=RankSettings(max_polyphony=88)) == []
    assert all(isinstance(v, float) and math.isfinite(v) for v in defects.values())


def test_runs_follow_one_pitch_and_break_at_pauses():
    # C4 struck 10 times, with a melody around it; then a 2 s pause; then C4 struck 3 times
    run = [Note(i * 0.25, i * 0.25 + 0.2, 60, 90) for i in range(10)]
    melody = [Note(i * 0.5, i * 0.5 + 0.4, 64 + i % 3, 90) for i in range(5)]
    later = [Note(4.5 + i * 0.25, 4.7 + i * 0.25, 60, 90) for i in range(3)]
    defects = measure_defects(run + melody + later, 10.0)
    assert defects["longest_run"] == 10
    assert defects["longest_run_pitch"] == 60
    assert defects["longest_run_share"] == pytest.approx((9 * 0.25 + 0.2) / 10.0)
    # struck while the run lasts (0 .. 2.45 s): its 10 strikes and the melody's 5 notes
    assert defects["longest_run_dominance"] == pytest.approx(10 / 15)


def test_repeat_share_counts_pitches_struck_again_soon():
    # alternating C and D every 0.2 s: each pitch comes back 0.4 s later, inside the 0.5 s window
    alternating = [Note(i * 0.2, i * 0.2 + 0.15, 60 + 2 * (i % 2), 90) for i in range(10)]
    assert measure_defects(alternating, 2.0)["repeat_share"] == pytest.approx(8 / 10)
    spread = [Note(i * 0.6, i * 0.6 + 0.5, 60, 90) for i in range(5)]
    assert measure_defects(spread, 3.0)["repeat_share"] == 0.0


def test_pitch_class_entropy_is_duration_weighted():
    octaves = [Note(0.0, 1.0, 48, 90), Note(1.0, 2.0, 60, 90), Note(2.0, 3.0, 72, 90)]
    assert measure_defects(octaves, 3.0)["pitch_class_entropy"] == 0.0
    chromatic = [Note(i * 1.0, i * 1.0 + 1.0, 60 + i, 90) for i in range(12)]
    assert measure_defects(chromatic, 12.0)["pitch_class_entropy"] == pytest.approx(math.log2(12))
    # one long C against eleven grace notes: far less varied than the chromatic scale
    lopsided = [Note(0.0, 11.0, 60, 90)] + [Note(11.0 + i * 0.05, 11.05 + i * 0.05, 61 + i, 90) for i in range(11)]
    assert measure_defects(lopsided, 12.0)["pitch_class_entropy"] < 1.0


def test_silences():
    notes = [Note(1.0, 2.0, 60, 90), Note(1.5, 2.5, 64, 90), Note(5.0, 6.0, 67, 90)]
    defects = measure_defects(notes, 10.0)
    assert defects["longest_silence"] == pytest.approx(4.0)  # from 6.0 to the end
    assert defects["silent_share"] == pytest.approx((1.0 + 2.5 + 4.0) / 10.0)


def test_no_notes_at_all():
    defects = measure_defects([], 30.0)
    assert defects["notes"] == 0.0
    assert defects["silent_share"] == 1.0
    assert defects["longest_silence"] == 30.0
    assert reject_reasons(defects, qmax=math.inf, settings=RankSettings()) == ["it has no notes at all"]


def test_note_names():
    assert [note_name(p) for p in (21, 59, 60, 61, 108)] == ["A0", "B3", "C4", "C#4", "C8"]


def test_what_two_hands_cannot_play_is_measured():
    chord = [Note(0.0, 1.0, 40 + 3 * i, 80) for i in range(12)]
    low = [Note(1.0, 2.0, 12, 80), Note(1.0, 2.0, 110, 80)]
    defects = measure_defects(chord + low, 2.0)
    assert defects["polyphony"] == 12
    assert defects["outside_piano"] == 2
    assert measure_defects(chord[:10], 2.0)["polyphony"] == 10
