"""The Pop2Piano generator on a tiny randomly initialised model loaded through the real
from_pretrained, processor and tokenizer code, on real recordings (no weights downloaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from covermill.models import pop2piano
from covermill.models.audio import read_audio
from covermill.models.errors import ModelMissing, SongNotSupported
from covermill.models.generator import Variant, load_generator
from covermill.tasks.arrange.styles import ArrangeSettings
from covermill.tasks.core.audio import decode_to_wav, probe, write_audio
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.gpu_slot import GpuSettings, slot_holder
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import read_midi
from covermill.tasks.core.records import Song
from covermill.tasks.cover.generate import GenerateSettings, make_candidates

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from random_pop2piano import save_random_pop2piano  # noqa: E402

FEW_TOKENS = 48  # random weights never stop on their own: keep every segment short


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return save_random_pop2piano(tmp_path_factory.mktemp("pop2piano") / "tiny")


@pytest.fixture(scope="session")
def wavs(clips, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wav")
    return {name: decode_to_wav(clip, folder / f"{name}.wav") for name, clip in clips.items()}


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
    assert run["sequences"] == 6 * run["segments"] and run["batch_size"] == run["sequences"]
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

    halvings, size = [], min(64, rows)
    while size > 5:
        halvings.append(f"pop2piano: out of memory with {size} sequences per call; retrying with {size // 2}")
        size //= 2
    assert [m for m in messages if "out of memory" in m] == halvings
    assert generator.batch_size == size and generator.last_run["batch_size"] == size
    assert max(attempts[-3:]) <= 5

    def always_out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(generator.model, "forward", always_out_of_memory)
    with pytest.raises(RuntimeError, match="batch of one"):
        generator.cover(wavs["song_a"])


def test_a_song_without_a_beat_grid_is_refused_with_a_reason(tiny_model, tmp_path):
    silence = write_audio(tmp_path / "silence.wav", np.zeros(44100 * 12, dtype=np.float32))
    with pytest.raises(SongNotSupported, match=r"no usable beat grid \(\d+ beats at \d+ BPM in 12 s"):
        tiny(tiny_model).cover(silence)


def test_too_long_a_song_is_refused_before_beat_tracking(tiny_model, wavs):
    with pytest.raises(SongNotSupported, match=r"lasts 25 s, longer than pop2piano's limit of 10 s"):
        tiny(tiny_model, max_seconds=10).song_features(wavs["song_a"])


def test_beats_are_tracked_afresh_for_every_song(tiny_model, wavs):
    generator = tiny(tiny_model)
    alone = pop2piano.track_beats(read_audio(wavs["song_a"], pop2piano.BEAT_TRACKER_RATE, mono=True, quality="VHQ"))
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


def song_in(out: Path, wav: Path, name: str) -> tuple[Song, SongFolder]:
    folder = SongFolder(out, name)
    decode_to_wav(wav, folder.audio)
    song = Song(id=name, source=str(wav), source_id=f"file:{name}", title=name, duration=probe(folder.audio).duration,
                original=wav, audio=folder.audio)
    return song, folder


def generate_settings(tiny_model: Path, **options) -> GenerateSettings:
    return GenerateSettings(
        generators=["pop2piano", "basic-pitch"],
        options={"pop2piano": {"model": str(tiny_model), "max_new_tokens": FEW_TOKENS, **options}},
    )


def test_candidates_of_both_generators_and_a_skip_with_its_reason(tiny_model, wavs, tmp_path):
    song, folder = song_in(tmp_path, wavs["song_b"], "song-b")
    arrange = ArrangeSettings()
    made = make_candidates(song, folder, generate_settings(tiny_model, arrangers="2,9", seeds=[0, 5]), arrange)
    covers = [c for c in made.candidates if c.generator == "pop2piano"]
    assert [(c.id, c.arranger, c.seed, c.style) for c in covers] == [
        ("pop2piano-a02-s0", 2, 0, "composer2"), ("pop2piano-a02-s5", 2, 5, "composer2"),
        ("pop2piano-a09-s0", 9, 0, "composer9"), ("pop2piano-a09-s5", 9, 5, "composer9"),
    ]
    assert all(c.midi.exists() and c.note_count == len(read_midi(c.midi)) > 0 for c in covers)
    assert len([c for c in made.candidates if c.generator == "basic-pitch"]) == len(arrange.variants())
    assert made.skipped == {}

    song, folder = song_in(tmp_path, wavs["song_c"], "song-c")
    made = make_candidates(song, folder, generate_settings(tiny_model, max_seconds=10), arrange)
    assert {c.generator for c in made.candidates} == {"basic-pitch"}
    assert made.skipped == {"pop2piano": "the song lasts 25 s, longer than pop2piano's limit of 10 s for beat "
                                         "tracking (option max_seconds)"}


def test_a_missing_model_stops_generation_with_its_sentence(wavs, tmp_path):
    song, folder = song_in(tmp_path, wavs["song_a"], "song-a")
    settings = GenerateSettings(generators=["pop2piano"], options={"pop2piano": {"model": str(tmp_path / "none")}})
    with pytest.raises(CovermillError, match=r"^there is no Pop2Piano model in .*none: on a connected machine"):
        make_candidates(song, folder, settings, ArrangeSettings())


@pytest.mark.server
@pytest.mark.usefixtures("prefect_server")
class TestGpuSlot:
    def active_slots(self, name: str) -> int:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return client.read_global_concurrency_limit_by_name(name).active_slots

    def test_every_generate_call_holds_the_slot_which_is_created_when_missing(self, tiny_model, wavs, tmp_path):
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        name = "gpu-test-calls"
        with get_client(sync_client=True) as client:
            with pytest.raises(ObjectNotFound):
                client.read_global_concurrency_limit_by_name(name)
        real_hold = slot_holder(name, slots=1)
        seen: list[int] = []

        class CountingHold:
            def __enter__(inner):
                inner.held = real_hold()
                inner.held.__enter__()
                seen.append(self.active_slots(name))

            def __exit__(inner, *exc):
                return inner.held.__exit__(*exc)

        song, folder = song_in(tmp_path, wavs["song_a"], "song-a")
        settings = GenerateSettings(generators=["pop2piano"], options={"pop2piano": {
            "model": str(tiny_model), "max_new_tokens": 16, "arrangers": "1", "seeds": [0, 1], "batch_size": 8}})
        made = make_candidates(song, folder, settings, ArrangeSettings(), hold=CountingHold)
        sequences = load_generator("pop2piano", settings.options["pop2piano"]).last_run["sequences"]
        assert len(made.candidates) == 2
        assert seen == [1] * -(-sequences // 8)  # one hold per generate call, each with the slot taken
        assert self.active_slots(name) == 0
        with get_client(sync_client=True) as client:
            assert client.read_global_concurrency_limit_by_name(name).limit == 1

    def test_a_run_waits_for_the_slot_another_run_holds(self, tiny_model, wavs, tmp_path):
        name = "gpu-test-busy"
        other_run = slot_holder(name, slots=1)
        song, folder = song_in(tmp_path, wavs["song_a"], "song-a")
        settings = GenerateSettings(generators=["pop2piano"], options={"pop2piano": {
            "model": str(tiny_model), "max_new_tokens": 16, "arrangers": "1", "seeds": [0]}})
        hold = GpuSettings(limit=name, wait_s=3).holder()
        with other_run():
            with pytest.raises(CovermillError, match=r"^waited 3 s for the 'gpu-test-busy' concurrency slot"):
                make_candidates(song, folder, settings, ArrangeSettings(), hold=hold)
        made = make_candidates(song, folder, settings, ArrangeSettings(), hold=hold)  # free again
        assert [c.id for c in made.candidates] == ["pop2piano-a01-s0"]


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory) -> Path:
    from random_stable_diffusion import save_random_stable_diffusion

    return save_random_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny")


@pytest.mark.server
def test_the_flow_with_every_model_ranks_both_generators_and_records_a_skip(prefect_server, tiny_model, tiny_pipeline, clips, tmp_path):
    from typer.testing import CliRunner

    from covermill.flows.cli import app
    from covermill.tasks.core.layout import ledger_path
    from covermill.tasks.core.ledger import Ledger
    from covermill.tasks.rank.ranking import ranking_table

    short = tmp_path / "song_b-15s.ogg"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-t", "15", "-i", str(clips["song_b"]), "-c:a", "libvorbis", str(short)], check=True)
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({
        "generate": {"generators": ["pop2piano", "basic-pitch"], "options": {
            "pop2piano": {"model": str(tiny_model), "max_new_tokens": FEW_TOKENS, "max_seconds": 20}}},
        # the models of the whole flow on tiny weights: the thumbnail's too, re-rolling seeds 0 and 1
        "thumbnail": {"generator": "stable-diffusion", "image_check": "image_checks:flag_seeds_0_and_1",
                      "stable_diffusion": {"model": str(tiny_pipeline), "steps": 2, "width": 112, "height": 64}},
    }))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(short), str(clips["song_c"]), "--out", str(out), "--config", str(config),
                                      "--arrangers", "1,2", "--seeds", "0", "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "2 of 2 songs done, 0 failed." in result.stdout

    ledger = Ledger(ledger_path(out))
    by_title = {song.title: song for song in ledger.songs()}
    covered, skipped = by_title["song_b-15s"], by_title["song_c"]

    assert ledger.generator_outcomes(covered.id) == {"pop2piano": ("done", ""), "basic-pitch": ("done", "")}
    rows = {row["candidate"]: row for row in ranking_table(ledger.ranking(covered.id), ledger.candidates(covered.id))}
    assert {"pop2piano-a01-s0", "pop2piano-a02-s0", "basic-pitch-balanced"} <= set(rows)
    assert (rows["pop2piano-a02-s0"]["generator"], rows["pop2piano-a02-s0"]["arranger"], rows["pop2piano-a02-s0"]["seed"]) == ("pop2piano", 2, 0)
    assert rows["basic-pitch-balanced"]["arranger"] == ""
    for row in rows.values():  # random weights make poor covers: each one is ranked or refused with a reason
        assert row["verdict"] in ("pick", "ok") or row["verdict"].startswith("rejected: ") and len(row["verdict"]) > 12

    assert ledger.stage_state(covered.id, "thumbnail:art") == ("done", "stable-diffusion seed 2")

    state, reason = ledger.generator_outcomes(skipped.id)["pop2piano"]
    assert state == "skipped" and reason.startswith("the song lasts 25 s, longer than pop2piano's limit of 20 s")
    assert {c.generator for c in ledger.candidates(skipped.id)} == {"basic-pitch"}
    assert ledger.ranking(skipped.id).pick is not None


def test_doctor_reports_the_pop2piano_model(tiny_model, tmp_path):
    from typer.testing import CliRunner

    from covermill.flows.cli import app

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"generate": {"generators": ["basic-pitch", "pop2piano"], "options": {
        "pop2piano": {"model": str(tmp_path / "absent")}}}}))
    missing = CliRunner().invoke(app, ["doctor", "--config", str(config)])
    assert missing.exit_code == 1
    absent = tmp_path / "absent"
    assert f"[MISS] generator pop2piano (covermill 0.1.0): transformers 5.23.0; model {absent} not found\n" in missing.stdout
    assert "fix: there is no Pop2Piano model in" in missing.stdout and "hf download sweetcocoa/pop2piano" in missing.stdout

    config.write_text(json.dumps({"generate": {"generators": ["basic-pitch", "pop2piano"], "options": {
        "pop2piano": {"model": str(tiny_model)}}}}))
    found = CliRunner().invoke(app, ["doctor", "--config", str(config)])
    assert f"[ok  ] generator pop2piano (covermill 0.1.0): transformers 5.23.0; model in {tiny_model}; enabled\n" in found.stdout

    config.write_text(json.dumps({"generate": {"options": {"pop2piano": {"model": str(tmp_path / "absent")}}}}))
    unused = CliRunner().invoke(app, ["doctor", "--config", str(config)])
    assert unused.exit_code == 0  # a generator config does not enable fails nothing; what it lacks is still shown
    assert f"[ok  ] generator pop2piano (covermill 0.1.0): transformers 5.23.0; model {tmp_path / 'absent'} not found; " \
           "not enabled in config" in unused.stdout
