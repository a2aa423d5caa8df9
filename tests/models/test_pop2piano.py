"""The Pop2Piano generator on a tiny randomly initialised model loaded through the real
from_pretrained, processor and tokenizer code, on real recordings (no weights downloaded)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from covermill.models import gpu_memory, pop2piano, pop2piano_features
from covermill.models.audio import read_audio
from covermill.models.batching import describe_slices, even_slices
from covermill.models.errors import ModelMissing, SongNotSupported
from covermill.models.generator import Variant
from covermill.tasks.core.audio import probe, write_audio

from conftest import FEW_TOKENS


def tiny(model: Path, **options) -> pop2piano.Pop2PianoGenerator:
    return pop2piano.load({"model": str(model), "max_new_tokens": FEW_TOKENS, **options})


def test_every_arranger_and_seed_gives_a_cover_on_the_song_clock(tiny_model, wavs):
    generator = tiny(tiny_model, arrangers="1,2,3", seeds=[0, 1])
    messages: list[str] = []
    covers = generator.cover(wavs["song_a"], progress=messages.append)

    assert list(covers) == [Variant(a, s) for a in (1, 2, 3) for s in (0, 1)]
    duration = probe(wavs["song_a"]).duration
    for notes in covers.values():
        assert notes, "a cover with no notes"
        assert all(0 <= n.start < n.end <= duration + 5 and 0 <= n.pitch <= 127 for n in notes)
    run = generator.last_run
    assert 60 <= run["bpm"] <= 200 and run["segments"] >= 5
    assert run["sequences"] == 6 * run["segments"] and run["batch_size"] == run["sequences"] and run["calls"] == 1
    assert messages[0].endswith(f"= {run['sequences']} sequences in 1 call of {run['sequences']}")
    assert any("sequences generated" in m for m in messages)


def test_seeds_vary_and_repeat_in_any_batch(tiny_model, wavs):
    generator = tiny(tiny_model, arrangers="1,2", seeds=[0, 1])
    together = generator.cover(wavs["song_a"])
    assert together[Variant(1, 0)] != together[Variant(1, 1)]  # seeds give real variation
    assert together[Variant(1, 0)] != together[Variant(2, 0)]  # and so do arrangers

    generator.batch_size = 3  # a few rows per generate call instead of all of them in one
    assert generator.cover(wavs["song_a"]) == together
    alone = generator.cover(wavs["song_a"], variants=[Variant(2, 1)])
    assert alone[Variant(2, 1)] == together[Variant(2, 1)]


def test_greedy_decoding_gives_one_cover_per_arranger(tiny_model, wavs):
    generator = tiny(tiny_model, arrangers=[4, 5], sampling=False)
    assert generator.variants() == [Variant(4, None), Variant(5, None)]
    first = generator.cover(wavs["song_b"])
    assert generator.cover(wavs["song_b"]) == first
    assert first[Variant(4, None)] != first[Variant(5, None)]


def test_out_of_memory_halves_the_batch_until_it_fits(tiny_model, wavs, monkeypatch):
    generator = tiny(tiny_model, arrangers="6,7", seeds=[3], batch_size=64)
    expected = generator.cover(wavs["song_a"])
    rows = generator.last_run["sequences"]
    assert rows > 8

    # The edge where CUDA would fail: the decoder's forward pass on more than 5 sequences at once.
    real_forward = generator.model.forward
    attempts: list[int] = []

    def forward_with_little_memory(*args, **kwargs):
        batch = kwargs["decoder_input_ids"].shape[0]
        attempts.append(batch)
        if batch > 5:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 2.00 GiB for {batch} sequences")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(generator.model, "forward", forward_with_little_memory)
    messages: list[str] = []
    assert generator.cover(wavs["song_a"], progress=messages.append) == expected  # same notes after halving

    # Each failure is the first (largest) of the even calls; half of it is the new limit, under
    # which all the rows are split evenly again.
    halvings, size = [], min(64, rows)
    tried = max(b - a for a, b in even_slices(rows, size))
    while tried > 5:
        size = tried // 2
        halvings.append(f"pop2piano: out of memory with {tried} sequences per call; retrying with {size}")
        tried = max(b - a for a, b in even_slices(rows, size))
    assert [m for m in messages if "out of memory" in m] == halvings
    assert generator.batch_size == size and generator.last_run["batch_size"] == size
    assert generator.last_run["calls"] == len(even_slices(rows, size))
    assert max(attempts[-3:]) <= 5

    def always_out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(generator.model, "forward", always_out_of_memory)
    with pytest.raises(RuntimeError, match="batch of one"):
        generator.cover(wavs["song_a"])


def test_on_a_gpu_the_free_memory_sizes_the_calls_and_they_are_even(tiny_model, wavs, monkeypatch):
    generator = tiny(tiny_model, arrangers="6,7", seeds=[3])
    expected = generator.cover(wavs["song_a"])
    rows = generator.last_run["sequences"]
    assert rows > 12 and generator.last_run["calls"] == 1

    # The one thing this machine lacks is a GPU's memory: it "has" room for 9 sequences at the
    # cost of a sequence (the H200 figure here, as a CPU measures none), with the margin kept.
    generator.batch_size = 0
    row_bytes = generator.row_bytes()
    assert row_bytes == gpu_memory.fallback_row_bytes(FEW_TOKENS, 4)  # float32 on a CPU
    free = int(row_bytes * 9 / (1 - gpu_memory.MARGIN)) + 1
    generator.free_memory = lambda: free
    real_forward = generator.model.forward
    batches: list[int] = []

    def forward(*args, **kwargs):
        batches.append(kwargs["decoder_input_ids"].shape[0])
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(generator.model, "forward", forward)
    messages: list[str] = []
    assert generator.cover(wavs["song_a"], progress=messages.append) == expected  # same notes in other batches

    calls = even_slices(rows, 9)
    assert sorted(set(batches)) == sorted({b - a for a, b in calls}) and max(batches) - min(batches) <= 1
    assert messages[0].endswith(f"= {rows} sequences in {describe_slices(calls)} "
                                f"(free {free / 1e9:.1f} GB, {row_bytes / 1e6:.1f} MB a sequence)")
    assert generator.last_run["calls"] == len(calls) and generator.last_run["row_mb"] == row_bytes / 1e6
    assert generator.batch_size == 0  # sized afresh for the next song: nothing ran out of memory


def test_the_model_is_warmed_up_once_per_process_and_changes_no_note(tiny_model, wavs, tmp_path, monkeypatch):
    model = shutil.copytree(tiny_model, tmp_path / "model")  # a model no other test has loaded (or warmed)
    options = pop2piano.Options(model=str(model), max_new_tokens=FEW_TOKENS, arrangers="2,9", seeds=[5])
    cold = pop2piano.Pop2PianoGenerator(options, warm_up=False)
    assert cold.warmup is None and cold.warmup_s == 0.0
    without = cold.cover(wavs["song_b"])

    # the same loaded model (load_model keeps it per process): count its decoding steps
    steps: list[int] = []
    real_forward = cold.model.forward

    def forward(*args, **kwargs):
        steps.append(kwargs["decoder_input_ids"].shape[0])
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(cold.model, "forward", forward)
    warm = pop2piano.load(options)
    assert warm.model is cold.model
    warmup = warm.warmup
    assert warmup is not None and warm.warmup_s == warmup.seconds > 0
    assert (warmup.rows, warmup.tokens, warmup.row_bytes) == (*pop2piano.WARMUP_CPU, None)
    assert steps == [warmup.rows] * warmup.tokens  # a real generate of full length, one step a token

    steps.clear()
    assert warm.cover(wavs["song_b"]) == without  # bit-identical with and without the warm-up
    song_steps = len(steps)
    steps.clear()
    again = pop2piano.load(options)  # the next song of the process: nothing to warm
    assert again.warmup is warmup and again.warmup_s == 0.0 and steps == []
    again.cover(wavs["song_b"])
    assert len(steps) == song_steps


def test_a_song_without_a_beat_grid_is_refused_with_a_reason(tiny_model, tmp_path):
    silence = write_audio(tmp_path / "silence.wav", np.zeros(44100 * 12, dtype=np.float32))
    with pytest.raises(SongNotSupported, match=r"no usable beat grid \(\d+ beats at \d+ BPM in 12 s"):
        tiny(tiny_model).cover(silence)


def test_too_long_a_song_is_refused_before_beat_tracking(tiny_model, wavs):
    with pytest.raises(SongNotSupported, match=r"lasts 25 s, longer than pop2piano's limit of 10 s"):
        tiny(tiny_model, max_seconds=10).song_features(wavs["song_a"])


def test_beats_are_tracked_afresh_for_every_song(tiny_model, wavs):
    generator = tiny(tiny_model)
    alone = pop2piano_features.track_beats(read_audio(wavs["song_a"], pop2piano_features.BEAT_TRACKER_RATE, mono=True, quality="VHQ"))
    generator.song_features(wavs["song_b"])
    after_another = generator.song_features(wavs["song_a"])
    assert after_another.bpm == pytest.approx(alone[0])
    assert after_another.beats == len(alone[1])


def test_bad_options_are_one_sentence():
    with pytest.raises(ValidationError, match=r"arrangers are numbers from 1 to 21"):
        pop2piano.Options(arrangers="0,22")
    with pytest.raises(ValidationError, match=r"arrangers must be 'all' or numbers like 1,3,20, got 'some'"):
        pop2piano.Options(arrangers="some")
    with pytest.raises(ValidationError, match=r"composer\n  Extra inputs are not permitted"):
        pop2piano.Options.model_validate({"composer": 3})
    with pytest.raises(ValidationError, match=r"dtype\n  Input should be 'float32', 'float16' or 'bfloat16'"):
        pop2piano.Options(dtype="int8")
    with pytest.raises(ValidationError, match=r"seeds must not repeat"):
        pop2piano.Options(seeds=[1, 1])
    with pytest.raises(ValidationError, match=r"seeds must list at least one seed when sampling"):
        pop2piano.Options(seeds=[])
    assert pop2piano.Options(seeds=[], sampling=False).variants() == [Variant(a, None) for a in range(1, 22)]
    assert pop2piano.Options(arrangers="20, 3,1").arrangers == [1, 3, 20]
    assert pop2piano.Options(arrangers=[20, 3, 3]).arrangers == [3, 20]
    assert pop2piano.Options(arrangers=7).arrangers == [7]
    assert len(pop2piano.Options().variants()) == 42  # 21 arrangers x seeds 0, 1
    assert pop2piano.variants(pop2piano.Options(arrangers="2", seeds=[4])) == [Variant(2, 4)]


def test_a_missing_local_model_says_where_to_put_it(tmp_path):
    with pytest.raises(ModelMissing) as found:
        pop2piano.load({"model": str(tmp_path / "nowhere")})
    message = str(found.value)
    assert message.startswith(f"there is no Pop2Piano model in {tmp_path / 'nowhere'}: ")
    assert "hf download sweetcocoa/pop2piano" in message and "\n" not in message


OFFLINE_LOAD = """
import sys
from covermill.models import pop2piano
from covermill.models.audio import read_audio
from covermill.models.errors import ModelMissing
try:
    model, processor = pop2piano.load_model("sweetcocoa/pop2piano", None, "cpu", "float32")
except ModelMissing as exc:
    print("MISSING", exc)
    sys.exit(3)
print("LOADED", model.config.d_model, sorted(model.generation_config.composer_to_feature_token)[:2])
"""


def hub_cache_with(model_dir: Path, cache: Path) -> Path:
    """The Hugging Face cache layout a real `hf download sweetcocoa/pop2piano` leaves behind."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--sweetcocoa--pop2piano"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in model_dir.iterdir():
        (snapshot / file.name).write_bytes(file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return cache


def test_hub_id_loads_offline_from_the_cache_and_a_missing_one_is_one_sentence(tiny_model, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "empty"))
    missing = subprocess.run([sys.executable, "-c", OFFLINE_LOAD], env=env, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 3, missing.stderr
    assert "MISSING the Pop2Piano model 'sweetcocoa/pop2piano' is not in this machine's Hugging Face cache and " \
           "HF_HUB_OFFLINE is set: on a connected machine run `hf download sweetcocoa/pop2piano" in missing.stdout
    assert "Traceback" not in missing.stderr

    env["HF_HUB_CACHE"] = str(hub_cache_with(tiny_model, tmp_path / "hub"))
    cached = subprocess.run([sys.executable, "-c", OFFLINE_LOAD], env=env, capture_output=True, text=True, timeout=300)
    assert cached.returncode == 0, cached.stderr
    assert "LOADED 32 ['composer1', 'composer10']" in cached.stdout


def test_prefetched_features_are_taken_and_give_the_same_covers(tiny_model, wavs, tmp_path):
    options = {"model": str(tiny_model), "max_new_tokens": FEW_TOKENS, "arrangers": "3", "seeds": [1]}
    generator = pop2piano.load(options)
    song = shutil.copy(wavs["song_b"], tmp_path / "song.wav")
    here = generator.cover(song)
    assert generator.last_run["features_prefetched"] is False

    pop2piano.prefetch(options, song)  # made in the worker process while nothing waits for it
    prefetched = generator.cover(song)
    assert generator.last_run["features_prefetched"] is True
    assert prefetched == here  # the same beats, segments and notes

    pop2piano.prefetch(options, song)
    shutil.copy(wavs["song_c"], song)  # the file changed after the prefetch: its features are not this song's
    assert generator.song_features(song).prefetched is False


def test_a_song_the_prefetch_worker_cannot_cover_is_refused_with_its_reason(tiny_model, wavs):
    options = {"model": str(tiny_model), "max_new_tokens": FEW_TOKENS, "max_seconds": 10}
    pop2piano.prefetch(options, wavs["song_a"])
    with pytest.raises(SongNotSupported, match="longer than pop2piano's limit of 10 s"):
        pop2piano.load(options).song_features(wavs["song_a"])
