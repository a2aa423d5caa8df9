"""The generate stage with Pop2Piano beside basic-pitch: candidates and skips with reasons, the gpu
slot held around every model call, a whole flow with every model on tiny random weights, and doctor."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from covermill.models.generator import load_generator
from covermill.tasks.arrange.styles import ArrangeSettings
from covermill.tasks.core.audio import decode_to_wav, probe
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.gpu_slot import GpuSettings, slot_holder
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import read_midi
from covermill.tasks.core.records import Song
from covermill.tasks.cover.generate import GenerateSettings, make_candidates

from conftest import FEW_TOKENS


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
