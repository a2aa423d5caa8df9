"""The embedded generators on real music: basic-pitch (ONNX) and transkun (torch, no torchaudio)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from pydantic import ValidationError

from covermill.models import basic_pitch, transkun
from covermill.models.generator import load_generator
from covermill.tasks.core.audio import decode_to_wav
from covermill.tasks.core.midi import read_midi

CLIP_START = 20.0  # conftest cuts the clips from here; the reference MIDIs count from the song's start


@pytest.fixture(scope="module")
def song_a_wav(clips, tmp_path_factory):
    return decode_to_wav(clips["song_a"], tmp_path_factory.mktemp("wav") / "song_a.wav")


@pytest.fixture(scope="module")
def song_a_notes(song_a_wav):
    return load_generator("basic-pitch").transcribe(song_a_wav)


def pitch_class_profile(notes) -> np.ndarray:
    return np.bincount([n.pitch % 12 for n in notes], weights=[n.end - n.start for n in notes], minlength=12)


def reference_window(midi, seconds=25.0):
    return [n for n in read_midi(midi) if CLIP_START <= n.start < CLIP_START + seconds]


def test_basic_pitch_transcribes_the_band_into_plausible_notes(song_a_notes):
    notes = song_a_notes
    assert len(notes) > 50  # the score has 123 pitched notes in these 25 s
    assert all(21 <= n.pitch <= 108 and 1 <= n.velocity <= 127 for n in notes)
    assert all(0.0 <= n.start < n.end <= 25.5 for n in notes)
    assert notes == sorted(notes, key=lambda n: (n.start, n.pitch, n.end, n.velocity))


def test_basic_pitch_hears_the_right_harmony(song_a_notes, reference_midis):
    heard = pitch_class_profile(song_a_notes)
    own = np.corrcoef(heard, pitch_class_profile(reference_window(reference_midis["song_a"])))[0, 1]
    others = [np.corrcoef(heard, pitch_class_profile(reference_window(reference_midis[name])))[0, 1]
              for name in ("song_b", "song_c")]
    assert own > 0.9
    assert own > max(others)


def test_basic_pitch_options_reach_the_model(song_a_wav, song_a_notes):
    strict = load_generator("basic-pitch", {"onset_threshold": 0.5, "frame_threshold": 0.3,
                                            "sparse_notes_per_minute": 0}).transcribe(song_a_wav)
    assert 0 < len(strict) < len(song_a_notes)  # the defaults (0.3, 0.2) catch more of a band mix
    narrow = load_generator("basic-pitch", {"minimum_frequency": 110.0}).transcribe(song_a_wav)
    assert narrow and min(n.pitch for n in narrow) >= 45  # A2 = 110 Hz


@pytest.mark.slow  # three more transcriptions
def test_a_sparse_song_is_decoded_again_at_lower_thresholds(song_a_wav, song_a_notes):
    off = load_generator("basic-pitch", {"sparse_notes_per_minute": 0}).transcribe(song_a_wav)
    # asking for more notes than any threshold finds walks the whole ladder, one pair at a time
    one_step = load_generator("basic-pitch", {"sparse_notes_per_minute": 1e6, "sparse_thresholds": [[0.2, 0.15]]})
    first_pair = one_step.transcribe(song_a_wav)
    whole = load_generator("basic-pitch", {"sparse_notes_per_minute": 1e6}).transcribe(song_a_wav)
    assert len(off) < len(first_pair) < len(whole)
    # the defaults stop at the first pair that finds 800 notes a minute
    minutes = sf.info(song_a_wav).duration / 60
    expected = next((notes for notes in (off, first_pair) if len(notes) >= 800 * minutes), whole)
    assert song_a_notes == expected
    with pytest.raises(ValidationError):
        basic_pitch.Options(sparse_thresholds=[[0.2, 1.5]])


def test_basic_pitch_leaves_no_telemetry_behind(song_a_wav, tmp_path):
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir(), tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"} | {"HOME": str(home), "TMPDIR": str(tmp)}
    code = f"from covermill.models.generator import load_generator; print(len(load_generator('basic-pitch').transcribe({str(song_a_wav)!r})))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and int(done.stdout.split()[-1]) > 0, done.stderr
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["home", "tmp"]


def test_basic_pitch_model_loads_once(song_a_notes):
    assert load_generator("basic-pitch") is load_generator("basic-pitch", {}) is load_generator("basic-pitch", basic_pitch.Options())
    other = load_generator("basic-pitch", basic_pitch.Options(onset_threshold=0.5, frame_threshold=0.3))
    assert other is not load_generator("basic-pitch") and other.options.onset_threshold == 0.5


def test_generator_options_are_checked():
    with pytest.raises(ValidationError) as misspelt:
        basic_pitch.Options.model_validate({"onset_treshold": 0.4})
    assert [(e["type"], e["loc"]) for e in misspelt.value.errors()] == [("extra_forbidden", ("onset_treshold",))]
    with pytest.raises(ValidationError, match="less than 1"):
        basic_pitch.Options(frame_threshold=3)
    with pytest.raises(ValidationError, match="device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"):
        transkun.Options(device="tpu")
    assert transkun.Options(device="cuda:1").device == "cuda:1"
    with pytest.raises(ValidationError, match="less than or equal to 16"):
        transkun.Options(hop_seconds=20)
    with pytest.raises(ValidationError, match="frozen"):
        transkun.Options().threads = 2  # a loaded model is cached per options: they never change under it
    # a bad option reaches load_generator as pydantic's error too, before any model loads
    with pytest.raises(ValidationError, match="threads"):
        load_generator("transkun", {"threads": -1})


def test_mel_filterbank_matches_the_checkpoint_and_librosa():
    import librosa

    ours = transkun.melscale_fbanks(n_freqs=2049, f_min=30, f_max=8000, n_mels=229, sample_rate=44100)
    state = torch.load(transkun.pretrained_file(transkun.WEIGHTS), map_location="cpu")["state_dict"]
    shipped = state["framewiseFeatureExtractor.freq2mels"]
    assert ours.shape == shipped.shape == (2049, 229)
    assert torch.allclose(ours, shipped, atol=1e-6)
    reference = librosa.filters.mel(sr=44100, n_fft=4096, n_mels=229, fmin=30, fmax=8000, htk=True, norm=None).T
    assert np.allclose(ours.numpy(), reference, atol=1e-4)


def test_torchaudio_stand_in_exists_only_inside_its_block():
    assert "torchaudio" not in sys.modules
    with transkun.torchaudio_stand_in():
        import torchaudio

        assert torchaudio.functional.melscale_fbanks is transkun.melscale_fbanks
    assert "torchaudio" not in sys.modules


@pytest.mark.slow
def test_transkun_transcribes_an_excerpt_without_leaving_torchaudio(clips, tmp_path):
    # transkun is slow on a CPU (three 16 s windows for anything up to 8 s): one short excerpt.
    excerpt = tmp_path / "excerpt.wav"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-t", "8", "-i", str(clips["song_a"]),
                    "-ac", "1", "-ar", "44100", "-c:a", "pcm_s16le", str(excerpt)], check=True)
    model = load_generator("transkun", {"device": "cpu"})
    assert "torchaudio" not in sys.modules
    notes = model.transcribe(excerpt)
    assert "torchaudio" not in sys.modules
    assert len(notes) > 10
    assert all(21 <= n.pitch <= 108 and 1 <= n.velocity <= 127 and 0 <= n.start < n.end <= 8.5 for n in notes)
    assert model.model.segmentSizeInSecond == transkun.WINDOW_SECONDS

    # One window per 16 s instead of overlapping ones: still the excerpt's notes, mostly the same.
    one_window = load_generator("transkun", {"device": "cpu", "hop_seconds": 16}).transcribe(excerpt)
    assert len(one_window) > 10
    same = {(n.pitch, round(n.start, 1)) for n in notes} & {(n.pitch, round(n.start, 1)) for n in one_window}
    assert len(same) > len(notes) / 2
