"""What the ranker measures per candidate: notes read back from a real MIDI file, and Qmax with WPD
from the same chroma, alike whether one process or several do the work."""

from __future__ import annotations

import numpy as np
import pytest

from covermill.models.notes import Note
from covermill.tasks.core.audio import decode_to_wav, read_mono, write_audio
from covermill.tasks.core.midi import read_midi, write_midi
from covermill.tasks.cover.render import RenderSettings, render_notes
from covermill.tasks.rank.defects import measure_defects
from covermill.tasks.rank.fluency import chord_pitches
from covermill.tasks.rank.measures import measure_candidates, note_measures
from covermill.tasks.rank.qmax import PROTOCOL, compare_all, cover_chroma, frame_seconds
from covermill.tasks.rank.warping import alignment_deviation


def short_long_tune() -> list[Note]:
    """18 onsets a short (0.25 s) and a long (0.5 s) interval apart; the 1st and 10th a chord three
    octaves wide, which no two hands strike."""
    onsets = np.concatenate([[0.0], np.cumsum([0.25, 0.5] * 8 + [0.25])])
    notes = []
    for i, start in enumerate(onsets):
        pitches = [36, 60, 84] if i in (0, 9) else [60 + i % 7]
        notes += [Note(float(start), float(start) + 0.2, pitch, 80) for pitch in pitches]
    return notes


def test_note_measures_of_a_midi_file(tmp_path):
    midi = write_midi(short_long_tune(), tmp_path / "tune.mid")
    measured = note_measures(midi, duration=10.0)
    assert measured.rgc == 0.0  # every interval a multiple of 0.25 s
    assert measured.ipe == pytest.approx(1.0)  # ten 8-grams, half starting short and half long
    assert measured.two_hand_share == pytest.approx(16 / 18)
    assert measured.defects == measure_defects(read_midi(midi), 10.0)


def test_chord_pitches_groups_onsets_within_30_ms_of_the_first():
    notes = [Note(0.0, 1.0, 60, 80), Note(0.02, 1.0, 64, 80), Note(0.04, 1.0, 67, 80), Note(0.5, 1.0, 72, 80)]
    assert chord_pitches(notes) == [[60, 64], [67], [72]]
    assert chord_pitches([]) == []


@pytest.fixture(scope="module")
def renders(clips, reference_midis, tmp_path_factory):
    """song_a's clip as the original; its score and song_b's score rendered on the piano, with their MIDI."""
    folder = tmp_path_factory.mktemp("measures")
    original = read_mono(decode_to_wav(clips["song_a"], folder / "song_a.wav"))
    audio, midis = [], []
    for name in ("song_a", "song_b"):
        score = read_midi(reference_midis[name])
        notes = [Note(n.start - 20.0, n.end - 20.0, n.pitch, n.velocity) for n in score if 20.0 <= n.start < 44.9]
        midis.append(write_midi(notes, folder / f"{name}.mid"))
        audio.append(write_audio(folder / f"{name}.flac", render_notes(notes, RenderSettings(), PROTOCOL.min_note_seconds)))
    return original, audio, midis


def test_qmax_and_wpd_come_from_the_same_chroma_in_one_or_several_processes(renders):
    original, audio, midis = renders
    serial = measure_candidates(original, audio, midis, 25.0, max_frames=200, workers=1)
    parallel = measure_candidates(original, audio, midis, 25.0, max_frames=200, workers=2)
    assert parallel[1] == serial[1] and parallel[2] == serial[2]
    chroma_original, chroma, _ = serial
    assert chroma_original.factor == 3
    # Qmax exactly as compare_all gives it; WPD as the warping module gives it on the same pooled chroma
    assert [c.result for c in chroma] == compare_all(original, audio, max_frames=200)[1]
    own = cover_chroma(audio[0], 3)
    assert chroma[0].wpd == alignment_deviation(own, chroma_original.features, frame_seconds(3))
    assert frame_seconds(3) == pytest.approx(3 * 2048 / 44100)
    assert chroma[0].result.qmax < chroma[1].result.qmax  # its own score is closer than another song's
