"""The generate stage's pure functions on a real clip: candidates, files, and no second transcription."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from covermill.models import basic_pitch, transkun
from covermill.tasks.arrange.styles import ArrangeSettings
from covermill.tasks.core.audio import decode_to_wav, write_audio
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.fingerprints import Fingerprints
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import read_midi, read_piece
from covermill.tasks.core.records import Song
from covermill.tasks.cover import generate as gen
from covermill.tasks.cover.generate import GenerateSettings, candidate_id, make_candidates, transcribe_song


def make_song(folder: SongFolder, source: str) -> Song:
    return Song(id=folder.root.name, source=source, source_id=f"file:{folder.root.name}", title="Clip",
                duration=25.0, original=Path(source), audio=folder.audio)


@pytest.fixture
def song_a(clips, tmp_path):
    folder = SongFolder(tmp_path, "x")
    decode_to_wav(clips["song_a"], folder.audio)
    return make_song(folder, str(clips["song_a"])), folder


def refuse_to_load(*args, **kwargs):
    raise AssertionError("a generator was loaded although the transcription is saved")


def test_candidates_for_every_style_and_seed_then_reused(song_a, monkeypatch):
    song, folder = song_a
    generate, arrange = GenerateSettings(), ArrangeSettings()
    first = make_candidates(song, folder, generate, arrange).candidates

    assert len(first) >= 8
    assert len({c.id for c in first}) == len(first)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", c.id) and c.generator == "basic-pitch" for c in first)
    assert {(c.style, c.seed) for c in first} == set(arrange.variants())
    for c in first:
        assert c.midi == folder.candidate_midi(c.id) and c.midi.exists()
        assert c.note_count == len(read_midi(c.midi)) > 0
    assert folder.transcription("basic-pitch").exists()
    humanised = [c for c in first if c.style == "humanised"]
    assert [c.id for c in humanised] == ["basic-pitch-humanised-s0", "basic-pitch-humanised-s1"]
    assert read_midi(humanised[0].midi) != read_midi(humanised[1].midi)

    monkeypatch.setattr(gen, "load_generator", refuse_to_load)
    assert make_candidates(song, folder, generate, arrange).candidates == first

    # a lost candidate is remade from the saved transcription, note for note
    lost = next(c for c in first if c.style == "melody-bass")
    before = read_midi(lost.midi)
    lost.midi.unlink()
    assert make_candidates(song, folder, generate, arrange).candidates == first
    assert read_midi(lost.midi) == before


class Transcriber:
    """Stands in for a loaded model: hands out `notes` and counts the loads."""

    def __init__(self, notes):
        self.notes, self.loads = notes, []

    def load(self, generator, options):
        self.loads.append(options)
        return self

    def transcribe(self, audio):
        return self.notes


def test_transcription_is_read_back_from_its_file_and_made_again_for_other_options(song_a, monkeypatch):
    song, folder = song_a
    saved = [gen.Note(0.5, 1.0, 60, 90), gen.Note(0.75, 2.0, 43, 70)]
    model = Transcriber(saved)
    monkeypatch.setattr(gen, "load_generator", model.load)
    first = transcribe_song(song, folder, "basic-pitch", basic_pitch.BasicPitchOptions())
    again = transcribe_song(song, folder, "basic-pitch", basic_pitch.BasicPitchOptions(threads=1))  # how it runs: same notes
    assert len(model.loads) == 1 and first == again
    assert [(n.pitch, n.velocity) for n in again] == [(60, 90), (43, 70)]
    assert all(abs(a.start - b.start) < 1e-3 and abs(a.end - b.end) < 1e-3 for a, b in zip(again, saved))

    transcribe_song(song, folder, "basic-pitch", basic_pitch.BasicPitchOptions(onset_threshold=0.5))
    assert len(model.loads) == 2  # another threshold is another transcription

    Fingerprints.of(folder).forget(folder.transcription("basic-pitch"))  # a file nobody recorded: a killed write, an old folder
    transcribe_song(song, folder, "basic-pitch", basic_pitch.BasicPitchOptions(onset_threshold=0.5))
    assert len(model.loads) == 3


def stamps(paths):
    """(inode, mtime) of each file: an atomic re-write gives a new inode."""
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


def test_a_changed_style_re_arranges_that_style_only(song_a, monkeypatch):
    song, folder = song_a
    styles = {"sparse": [{"step": "fold"}, {"step": "thin", "max_voices": 4}], "humanised": [{"step": "humanise"}]}
    arrange = ArrangeSettings(styles=styles, seeds=[0, 1])
    made = make_candidates(song, folder, GenerateSettings(), arrange).candidates
    before = stamps([c.midi for c in made] + [folder.transcription("basic-pitch"), folder.analysis])

    monkeypatch.setattr(gen, "load_generator", refuse_to_load)
    monkeypatch.setattr(gen, "analyse", refuse_to_load)
    changed = ArrangeSettings(styles={**styles, "humanised": [{"step": "humanise", "timing_sd": 0.03}]}, seeds=[0, 1])
    remade = make_candidates(song, folder, GenerateSettings(), changed).candidates
    after = stamps(before)
    assert [c.id for c in remade] == [c.id for c in made]
    assert {p.name for p in before if before[p] != after[p]} == {"basic-pitch-humanised-s0.mid", "basic-pitch-humanised-s1.mid"}

    make_candidates(song, folder, GenerateSettings(), ArrangeSettings(styles=styles, seeds=[0, 1]))  # and back again
    assert {p.name for p, stamp in stamps(before).items() if stamp != after[p]} == {"basic-pitch-humanised-s0.mid", "basic-pitch-humanised-s1.mid"}


def test_silence_gives_one_clear_error(tmp_path):
    folder = SongFolder(tmp_path, "quiet")
    write_audio(folder.audio, np.zeros(44100 * 3, dtype=np.float32))
    song = make_song(folder, "https://example.org/silence")
    with pytest.raises(CovermillError, match=r"^https://example.org/silence: .*no music; give a recording with music in it\.$"):
        make_candidates(song, folder, GenerateSettings(), ArrangeSettings())
    assert folder.transcription("basic-pitch").exists()  # silence is an answer too: not asked again
    assert not folder.candidates_dir.exists() or not list(folder.candidates_dir.glob("*.mid"))


def test_candidate_ids():
    assert candidate_id("basic-pitch", "melody-bass", None) == "basic-pitch-melody-bass"
    assert candidate_id("transkun", "humanised", 3) == "transkun-humanised-s3"


def test_generate_settings_know_the_generators():
    assert {"basic-pitch", "transkun", "pop2piano"} <= set(gen.known_generators())
    assert GenerateSettings().generators == ["basic-pitch"]
    with pytest.raises(ValidationError, match="unknown generator 'basic_pitch'; known generators: .*basic-pitch"):
        GenerateSettings(generators=["basic_pitch"])
    with pytest.raises(ValidationError) as misspelt:
        GenerateSettings(options={"basic-pitch": {"onset_treshold": 0.4}})
    located = [(e["type"], e["loc"]) for e in misspelt.value.errors()]
    assert located == [("extra_forbidden", ("options", "basic-pitch", "onset_treshold"))]
    with pytest.raises(ValidationError, match="at least one generator"):
        GenerateSettings(generators=[])
    with pytest.raises(ValidationError, match="listed once"):
        GenerateSettings(generators=["basic-pitch", "basic-pitch"])
    settings = GenerateSettings(generators=["basic-pitch", "transkun"], options={"transkun": {"device": "cpu"}})
    assert settings.options_for("transkun") == transkun.TranskunOptions(device="cpu")
    assert settings.options_for("basic-pitch") == basic_pitch.BasicPitchOptions()  # its defaults
    assert GenerateSettings.model_validate(settings.model_dump(mode="json")) == settings  # as the CLI round-trips it


def test_the_song_is_analysed_once_and_the_pianist_styles_sit_on_its_grid(song_a, monkeypatch):
    song, folder = song_a
    made = make_candidates(song, folder, GenerateSettings(), ArrangeSettings()).candidates
    analysis = gen.load_analysis(folder.analysis)
    assert analysis is not None and analysis.grid.source == "audio"
    ballad = read_piece(next(c for c in made if c.style == "ballad").midi)
    assert {n.hand for n in ballad.notes} == {"left", "right"} and ballad.pedal
    assert ballad.grid is not None and ballad.grid.beats_per_bar == analysis.grid.beats_per_bar
    downbeats = analysis.grid.downbeats
    written = ballad.grid.downbeats  # the MIDI's bar lines fall on the song's tracked downbeats
    assert all(np.min(np.abs(written - d)) < 1e-3 for d in downbeats if d < ballad.notes[-1].end - 1.0)

    def refuse(*args, **kwargs):
        raise AssertionError("the song was analysed again although analysis.json is there")

    monkeypatch.setattr(gen, "analyse", refuse)
    next(c for c in made if c.style == "ballad").midi.unlink()
    assert make_candidates(song, folder, GenerateSettings(), ArrangeSettings()).candidates == made


def test_the_log_says_transcribing_when_the_saved_transcription_is_stale(song_a, caplog):
    song, folder = song_a
    arrange = ArrangeSettings(styles={"sparse": [{"step": "fold"}, {"step": "thin", "max_voices": 4}]}, seeds=[0])
    with caplog.at_level("INFO", logger="covermill.generate"):
        make_candidates(song, folder, GenerateSettings(), arrange)
        assert "basic-pitch: transcribing 'Clip'" in caplog.messages
        caplog.clear()
        folder.candidate_midi("basic-pitch-sparse").unlink()  # lost: remade from the saved transcription
        make_candidates(song, folder, GenerateSettings(), arrange)
        assert "basic-pitch: reading the saved transcription" in caplog.messages
        caplog.clear()
        other = GenerateSettings(options={"basic-pitch": {"onset_threshold": 0.6}})  # the saved one is another threshold's
        make_candidates(song, folder, other, arrange)
        assert "basic-pitch: transcribing 'Clip'" in caplog.messages, caplog.messages
