"""Arrangement steps and styles on real music: the scores the test clips were played from."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from covermill.models.notes import Note, onset_groups, polyphony, sort_notes
from covermill.tasks.arrange import styles as arr
from covermill.tasks.arrange.beats import beat_times
from covermill.tasks.arrange.quantise import QuantiseParams
from covermill.tasks.arrange.registry import STEPS, StepContext
from covermill.tasks.arrange.steps import (
    FoldParams,
    HumaniseParams,
    MelodyBassParams,
    PaceParams,
    SustainParams,
    ThinParams,
)
from covermill.tasks.arrange.styles import ArrangeSettings, arrange, style_uses_seed
from covermill.tasks.core.midi import read_midi
from covermill.tasks.core.music import Piece


@pytest.fixture(scope="module")
def band(reference_midis) -> list[Note]:
    """40 s of a four-instrument arrangement: up to 11 notes at once, like a band transcription."""
    return [n for n in read_midi(reference_midis["song_b"]) if n.start < 40.0]


def skyline(notes: list[Note]) -> set[tuple[float, int]]:
    """(onset, pitch) of every note that is the highest sounding note when it starts."""
    tops = set()
    for note in notes:
        sounding = [m for m in notes if m.start <= note.start < m.end]
        if note.pitch == max(m.pitch for m in sounding):
            tops.add((note.start, note.pitch))
    return tops


def same_pitch_overlaps(notes: list[Note]) -> int:
    by_pitch: dict[int, list[Note]] = {}
    for n in sorted(notes):
        by_pitch.setdefault(n.pitch, []).append(n)
    return sum(1 for same in by_pitch.values() for a, b in zip(same, same[1:]) if b.start < a.end - 1e-9)


def test_the_band_is_dense(band):
    assert polyphony(band) >= 10


def test_polyphony_counts_simultaneous_notes():
    assert polyphony([Note(0, 1, 60, 80), Note(0.5, 2, 64, 80), Note(1, 3, 67, 80)]) == 2
    assert polyphony([]) == 0


def test_fold_brings_every_note_into_the_range_by_octaves(band):
    stretched = [n._replace(pitch=n.pitch + 40) if n.pitch > 60 else n._replace(pitch=max(0, n.pitch - 20)) for n in band]
    assert max(n.pitch for n in stretched) > 108 and min(n.pitch for n in stretched) < 21
    folded = STEPS["fold"].run(stretched, FoldParams())
    assert all(21 <= n.pitch <= 108 for n in folded)
    assert {(n.start, n.pitch % 12) for n in folded} <= {(n.start, n.pitch % 12) for n in stretched}
    assert same_pitch_overlaps(folded) == 0
    narrow = STEPS["fold"].run(band, FoldParams(low=48, high=72))
    assert all(48 <= n.pitch <= 72 for n in narrow)
    assert len(narrow) < len(band)  # the unisons folding made were merged


def test_fold_needs_an_octave():
    with pytest.raises(ValidationError, match="octave"):
        FoldParams(low=60, high=65)


def test_thin_caps_polyphony_keeping_top_line_and_bass(band):
    thinned = STEPS["thin"].run(band, ThinParams(max_voices=4))
    assert polyphony(thinned) <= 4
    kept = {(n.start, n.pitch) for n in thinned}
    assert skyline(band) <= kept
    inverted = [n._replace(pitch=127 - n.pitch) for n in band]
    assert {(s, 127 - p) for s, p in skyline(inverted)} <= kept  # the bass line, bottom up


def test_thin_drops_weak_and_short_notes(band):
    thinned = STEPS["thin"].run(band, ThinParams(max_voices=20, min_velocity=70, min_duration=0.2))
    originals = {(n.start, n.pitch): n for n in band}
    assert thinned and len(thinned) < len(band)
    assert all(originals[(n.start, n.pitch)].velocity >= 70 and originals[(n.start, n.pitch)].duration >= 0.2 for n in thinned)


def test_pace_caps_the_notes_struck_per_window_keeping_each_chords_outer_notes():
    # a 7-note chord every sixteenth at 120 BPM: 56 notes a second, loud in the middle
    chords = [[Note(i * 0.125, i * 0.125 + 0.125, 48 + 4 * k, 40 + 10 * min(k, 6 - k)) for k in range(7)] for i in range(16)]
    notes = [n for chord in chords for n in chord]
    paced = STEPS["pace"].run(notes, PaceParams(max_rate=24, window=0.5))
    for w in range(4):
        assert sum(1 for n in paced if w * 0.5 <= n.start < (w + 1) * 0.5) == 12
    kept = set(paced)
    assert all(chord[0] in kept and chord[-1] in kept for chord in chords)  # the bass and the top line
    inner = [n for n in paced if n.pitch not in (48, 72)]
    assert {n.pitch for n in inner} == {60}  # the loudest inner voice fills the rest (4 of 4 a window)


def test_pace_leaves_a_playable_rate_alone(band):
    assert STEPS["pace"].run(band, PaceParams(max_rate=200)) == sort_notes(band)


def test_melody_bass_keeps_the_top_line_over_a_simple_left_hand(band):
    params = MelodyBassParams(grid=0.5)
    out = STEPS["melody_bass"].run(band, params)
    melody = [n for n in out if n.pitch >= params.split]
    bass = [n for n in out if n.pitch < params.split]
    assert polyphony(melody) == 1 and polyphony(bass) == 1
    originals = {(n.start, n.pitch) for n in band}
    assert {(n.start, n.pitch) for n in out} <= originals
    upper = [n for n in band if n.pitch >= params.split]
    assert skyline(upper) <= {(n.start, n.pitch) for n in melody}
    cells = [int(n.start // 0.5) for n in bass]
    assert len(cells) == len(set(cells))  # one left-hand note per cell
    for n in bass:  # ...and it is the lowest note struck in its cell
        cell = int(n.start // 0.5)
        assert n.pitch == min(m.pitch for m in band if int(m.start // 0.5) == cell)


def test_sustain_lets_notes_ring_and_joins_restrikes(band):
    params = SustainParams(max_length=1.5, restrike_gap=0.05)
    held = STEPS["sustain"].run(band, params)
    assert sum(n.duration for n in held) > 1.2 * sum(n.duration for n in band)
    assert {(n.start, n.pitch) for n in held} <= {(n.start, n.pitch) for n in band}
    assert same_pitch_overlaps(held) == 0
    by_pitch: dict[int, list[Note]] = {}
    for n in held:
        by_pitch.setdefault(n.pitch, []).append(n)
    gaps = [b.start - a.end for same in by_pitch.values() for a, b in zip(same, same[1:])]
    # a key is either struck again while it rings (gap 0) or after a real rest: no stutter
    assert all(gap == 0.0 or gap > params.restrike_gap for gap in gaps)
    restrikes = [(a, b) for same in by_pitch.values() for a, b in zip(same, same[1:])]
    assert restrikes  # the check above had something to check


def test_humanise_is_reproducible_per_seed_and_keeps_the_chords(band):
    thinned = STEPS["thin"].run(band, ThinParams(max_voices=6))
    run = STEPS["humanise"].run
    first = run(thinned, HumaniseParams(), np.random.default_rng(7))
    again = run(thinned, HumaniseParams(), np.random.default_rng(7))
    other = run(thinned, HumaniseParams(), np.random.default_rng(8))
    assert first == again
    assert first != other
    assert len(first) == len(thinned) and polyphony(first) == polyphony(thinned)
    moved = [abs(a.start - b.start) for a, b in zip(sorted(first, key=lambda n: (n.pitch, n.start)),
                                                     sorted(thinned, key=lambda n: (n.pitch, n.start)))]
    assert 0 < max(moved) < 0.05
    assert any(a.velocity != b.velocity for a, b in zip(first, thinned))


def test_quantise_snaps_onsets_to_the_grid(band):
    snapped = STEPS["quantise"].apply(Piece(notes=band), QuantiseParams(grid=0.5, subdivision=2), StepContext()).notes
    assert all(abs(n.start / 0.25 - round(n.start / 0.25)) < 1e-6 for n in snapped)
    assert all(n.end > n.start for n in snapped) and same_pitch_overlaps(snapped) == 0


@pytest.mark.parametrize("song, beat", [("song_b", 0.428), ("song_c", 0.504)])  # as the scores are written
def test_beat_tracking_finds_the_scores_tempo(reference_midis, song, beat):
    notes = [n for n in read_midi(reference_midis[song]) if n.start < 60.0]
    beats = beat_times(notes)
    assert abs(float(np.median(np.diff(beats))) - beat) < 0.015
    assert beats[0] <= notes[0].start and beats[-1] >= notes[-1].start
    assert beat_times(notes, period=0.25)[1] == 0.25


DEFAULT_CAPS = {"balanced": 6, "rich": 8, "thinned": 8, "sparse": 4, "melody-bass": 2, "pedal": 6, "humanised": 6,
                "two-hands": 10, "ballad": 10, "pop-arpeggio": 10, "block-chords": 10, "melody-octaves": 10}  # most keys down at once
TWO_HANDED = {"two-hands", "ballad", "pop-arpeggio", "block-chords", "melody-octaves"}


def test_every_default_style_is_deterministic_and_playable(band):
    settings = ArrangeSettings()
    variants = settings.variants()
    assert len(variants) >= 8
    for style, seed in variants:
        out = arrange(band, settings.styles[style], seed)
        assert out == arrange(band, settings.styles[style], seed), style
        assert out and all(n.end > n.start and 1 <= n.velocity <= 127 for n in out)
        assert all(21 <= n.pitch <= 108 for n in out)
        assert polyphony(out) <= DEFAULT_CAPS[style], style
        if style in TWO_HANDED:
            assert {n.hand for n in out} == {"left", "right"}, style
            for group in onset_groups(out):
                for hand in ("left", "right"):
                    struck = sorted(n.pitch for n in group if n.hand == hand)
                    assert len(struck) <= 5 and (not struck or struck[-1] - struck[0] <= 14), (style, struck)


def test_only_random_styles_take_seeds():
    settings = ArrangeSettings(styles={"plain": [{"step": "thin"}], "wobbly": [{"step": "humanise"}]}, seeds=[3, 4, 5])
    assert settings.variants() == [("plain", None), ("wobbly", 3), ("wobbly", 4), ("wobbly", 5)]
    assert not style_uses_seed([{"step": "fold"}, {"step": "sustain"}])
    assert style_uses_seed([{"step": "fold"}, {"step": "humanise", "timing_sd": 0.0}])
    with pytest.raises(ValueError, match="needs a seed"):
        arrange([Note(0, 1, 60, 80)], [{"step": "humanise"}], None)


def test_settings_name_the_known_steps():
    with pytest.raises(ValidationError, match="unknown arrangement step 'fodl'; known steps: accompany, dynamics, fold, hands, humanise, melody, melody_bass, pace, pedal"):
        ArrangeSettings(styles={"mine": [{"step": "fodl"}]})
    with pytest.raises(ValidationError, match="max_voices"):
        ArrangeSettings(styles={"mine": [{"step": "thin", "max_voices": 1}]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        ArrangeSettings(styles={"mine": [{"step": "thin", "voices": 3}]})
    with pytest.raises(ValidationError, match="file"):
        ArrangeSettings(styles={"my style": []})
    with pytest.raises(ValidationError, match="distinct"):
        ArrangeSettings(seeds=[1, 1])
    assert set(arr.DEFAULT_STYLES) <= set(ArrangeSettings().styles)


def test_dynamics_pulls_velocities_towards_the_target():
    from covermill.tasks.arrange.steps import DynamicsParams, dynamics

    notes = [Note(0, 1, 60, 20), Note(0, 1, 64, 120)]
    assert [n.velocity for n in dynamics(notes, DynamicsParams(target=80, strength=0.5))] == [50, 100]
    assert [n.velocity for n in dynamics(notes, DynamicsParams(target=80, strength=1.0))] == [80, 80]
    assert dynamics(notes, DynamicsParams(strength=0.0)) == notes
