"""Qmax: the AMT-APC protocol on real recordings, pooled and native."""

from __future__ import annotations

import math

import numpy as np
import pytest

from covermill.models.notes import Note
from covermill.tasks.core.audio import decode_to_wav, read_mono, write_audio
from covermill.tasks.core.midi import read_midi
from covermill.tasks.cover.render import RenderSettings, render_notes
from covermill.tasks.rank.qmax import PROTOCOL, OriginalChroma, chroma_frames, compare_all, hpcp, pool_factor, pool_frames, qmax


def excerpt(notes: list[Note], start: float, seconds: float) -> list[Note]:
    return [
        Note(n.start - start, min(n.end, start + seconds) - start, n.pitch, n.velocity)
        for n in notes if start <= n.start < start + seconds - 0.01
    ]


@pytest.fixture(scope="module")
def recordings(clips, tmp_path_factory) -> dict[str, np.ndarray]:
    folder = tmp_path_factory.mktemp("qmax")
    return {name: read_mono(decode_to_wav(clips[name], folder / f"{name}.wav")) for name in ("song_a", "song_b")}


@pytest.fixture(scope="module")
def covers(reference_midis) -> dict[str, np.ndarray]:
    """Piano renders, as the protocol makes them: song_a's own score, song_b's score, a banged B3."""
    def render(notes: list[Note]) -> np.ndarray:
        return render_notes(notes, RenderSettings(), drop_shorter_than=PROTOCOL.min_note_seconds)

    return {
        "own score": render(excerpt(read_midi(reference_midis["song_a"]), 20.0, 25.0)),
        "other song": render(excerpt(read_midi(reference_midis["song_b"]), 20.0, 25.0)),
        "banging": render([Note(i * 0.2, i * 0.2 + 0.15, 59, 100) for i in range(125)]),
    }


def test_hpcp_is_twelve_bins_per_hop(recordings):
    chroma = hpcp(recordings["song_a"])
    assert chroma.shape == (math.ceil(len(recordings["song_a"]) / PROTOCOL.hop_size) + 1, 12)
    assert chroma.dtype == np.float32
    assert np.allclose(chroma.max(axis=1)[chroma.max(axis=1) > 0], 1.0)  # unitMax frames
    assert not hpcp(np.zeros(44100, np.float32)).any()


def test_regression_guard_on_real_recordings(recordings, covers):
    """Fixed pairs, native resolution: a change in the protocol or the tools moves these numbers."""
    original = OriginalChroma(recordings["song_a"], max_frames=100_000)
    assert original.factor == 1
    # a different recording against song_a: audio only, so exactly reproducible
    other = original.compare(recordings["song_b"])
    assert other.qmax == pytest.approx(0.2793, rel=0.01)
    assert other.frames == len(hpcp(recordings["song_b"])) - PROTOCOL.frame_stack_size  # essentia's stacking
    # song_a's own score rendered on piano: the reverb's modulation moves it by about 1 %
    own = original.compare(covers["own score"])
    assert own.qmax == pytest.approx(0.0672, rel=0.04)
    assert own.aligned_share == pytest.approx(1 / (own.qmax * math.sqrt(own.frames)))
    assert own.qmax < other.qmax < original.compare(covers["banging"]).qmax


def test_qmax_is_deterministic(recordings, covers):
    original = OriginalChroma(recordings["song_a"], max_frames=PROTOCOL.frame_stack_size * 20)
    first = original.compare(covers["own score"])
    again = OriginalChroma(recordings["song_a"], max_frames=PROTOCOL.frame_stack_size * 20).compare(covers["own score"])
    assert first == again
    assert math.isfinite(first.qmax)


def test_pooling_keeps_the_order_and_scales_qmax_as_expected(recordings, covers):
    native = OriginalChroma(recordings["song_a"], max_frames=100_000)
    pooled = OriginalChroma(recordings["song_a"], max_frames=180)
    assert pooled.factor == 3
    native_scores = {name: native.compare(audio) for name, audio in covers.items()}
    pooled_scores = {name: pooled.compare(audio) for name, audio in covers.items()}
    order = ["own score", "other song", "banging"]
    assert sorted(native_scores, key=lambda n: native_scores[n].qmax) == order
    assert sorted(pooled_scores, key=lambda n: pooled_scores[n].qmax) == order
    # Qmax = sqrt(N) / S: with a third of the frames and a similar aligned share it grows by up
    # to sqrt(3); the real cover stays close-ish to its native value
    ratio = pooled_scores["own score"].qmax / native_scores["own score"].qmax
    assert 1.0 <= ratio <= math.sqrt(3)


def test_the_originals_factor_pools_every_candidate(recordings):
    original = OriginalChroma(recordings["song_a"], max_frames=200)
    assert original.factor == pool_factor(original.native_frames, 200) == 3
    assert len(original.features) <= 200
    longer_cover = np.concatenate([recordings["song_b"], recordings["song_b"]])
    assert len(original.cover_features(longer_cover)) == math.ceil(len(hpcp(longer_cover)) / 3)


def test_a_silent_or_tiny_cover_aligns_with_nothing(recordings):
    original = OriginalChroma(recordings["song_a"], max_frames=1000)
    for cover in (np.zeros(len(recordings["song_a"]), np.float32), recordings["song_a"][:4410]):
        result = original.compare(cover)
        assert result.qmax == math.inf
        assert result.aligned_share == 0.0
    silent_original = OriginalChroma(np.zeros(44100 * 5, np.float32), max_frames=1000)
    assert silent_original.compare(recordings["song_a"]).qmax == math.inf


def test_pool_factor():
    assert pool_factor(500, 1000) == 1
    assert pool_factor(1000, 1000) == 1
    assert pool_factor(1001, 1000) == 2
    assert pool_factor(12962, 1000) == 13
    with pytest.raises(ValueError):
        pool_factor(10, 0)


def test_pool_frames_averages_and_renormalises():
    features = np.zeros((5, 12), np.float32)
    features[0, 0] = 1.0
    features[1, 0], features[1, 4] = 0.5, 1.0
    features[4, 7] = 0.25
    pooled = pool_frames(features, 2)
    assert pooled.shape == (3, 12)
    assert pooled[0, 0] == pytest.approx(1.0) and pooled[0, 4] == pytest.approx(2 / 3)  # (0.75, 0.5) / 0.75
    assert not pooled[1].any()  # silence stays silence
    assert pooled[2, 7] == pytest.approx(1.0)  # the short last run is kept and rescaled
    assert np.array_equal(pool_frames(features, 1), features)


def test_qmax_needs_enough_frames_to_stack():
    rng = np.random.default_rng(0)
    chroma = rng.random((PROTOCOL.stacked_frames, 12)).astype(np.float32)
    assert qmax(chroma, chroma).qmax == math.inf
    longer = rng.random((40, 12)).astype(np.float32)
    assert math.isfinite(qmax(longer, longer).qmax)


@pytest.mark.parametrize("samples", [0, 1, 2047, 2048, 2049, 4096, 132317])
def test_the_frame_count_is_known_before_the_chroma(samples):
    noise = (np.random.default_rng(0).standard_normal(samples) * 0.1).astype(np.float32)
    assert chroma_frames(samples) == len(hpcp(noise))


def test_comparing_in_several_processes_gives_the_serial_answers(recordings, covers, tmp_path):
    paths = []
    for name, samples in covers.items():
        paths.append(write_audio(tmp_path / f"{name}.flac", samples))
    serial_original, serial = compare_all(recordings["song_a"], paths, max_frames=200, workers=1)
    parallel_original, parallel = compare_all(recordings["song_a"], paths, max_frames=200, workers=2)
    assert parallel == serial
    assert parallel_original.factor == serial_original.factor == 3
    assert serial[0].qmax < serial[1].qmax < serial[2].qmax  # own score, other song, banging
