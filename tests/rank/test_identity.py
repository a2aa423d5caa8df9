"""The recognisability gate on real recordings: a pick made from its own song's score passes; a pick
made from another song's score is held back, naming that song; a held song waits for a person."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from covermill.flows.cli import app
from covermill.tasks.core.audio import decode_to_wav, probe, write_audio
from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import IDENTITY_STAGE, Ledger, State
from covermill.tasks.core.midi import read_midi
from covermill.tasks.core.records import Song
from covermill.tasks.cover.render import RenderSettings, render_notes
from covermill.tasks.publish.queue import waiting
from covermill.tasks.rank.identity import IdentitySettings, check_identity, sample_others

from conftest import CLIP_SECONDS, CLIPS
from helpers import publishable_song


@pytest.fixture(scope="module")
def folder_of_songs(clips, reference_midis, tmp_path_factory):
    """A work folder holding the three clips as songs, and a piano render of each one's score over the same stretch."""
    out = tmp_path_factory.mktemp("identity")
    songs, renders = {}, {}
    for name, clip in clips.items():
        folder = SongFolder(out, name)
        decode_to_wav(clip, folder.audio)
        songs[name] = Song(id=name, source=str(clip), source_id=f"file:{name}", title=name,
                           duration=probe(folder.audio).duration, original=clip, audio=folder.audio)
        start = CLIPS[name][1]  # where the clip was cut from the recording the score belongs to
        score = [n._replace(start=n.start - start, end=n.end - start) for n in read_midi(reference_midis[name])
                 if start <= n.start < start + CLIP_SECONDS]
        renders[name] = write_audio(out / f"{name}-score.flac", render_notes(score, RenderSettings()), 44100)
    return out, songs, renders


def test_a_pick_played_from_its_own_score_is_nearest_its_own_song(folder_of_songs):
    out, songs, renders = folder_of_songs
    verdict = check_identity(songs["song_b"], renders["song_b"], out, list(songs.values()), IdentitySettings())
    assert not verdict.held
    assert {c.song_id for c in verdict.others} == {"song_a", "song_c"}
    assert all(verdict.own < c.qmax for c in verdict.others)
    assert (SongFolder(out, "song_a").original_chroma).exists()  # kept for the next check


def test_a_pick_of_another_song_is_held_naming_it(folder_of_songs):
    out, songs, renders = folder_of_songs
    verdict = check_identity(songs["song_a"], renders["song_c"], out, list(songs.values()), IdentitySettings())
    assert verdict.held and verdict.others[0].song_id == "song_c"
    assert "'song_c'" in verdict.reason and "a person may still approve it" in verdict.reason


def test_alone_in_its_folder_a_pick_cannot_be_compared(folder_of_songs):
    out, songs, renders = folder_of_songs
    verdict = check_identity(songs["song_a"], renders["song_c"], out, [songs["song_a"]], IdentitySettings())
    assert not verdict.held and verdict.others == [] and "no other song" in verdict.reason


def test_the_sample_of_other_songs_is_the_same_every_time(folder_of_songs):
    out, songs, _ = folder_of_songs
    pool = [(s, SongFolder(out, s.id)) for s in songs.values()]
    first = [s.id for s, _ in sample_others(songs["song_a"], pool, 1)]
    assert first == [s.id for s, _ in sample_others(songs["song_a"], list(reversed(pool)), 1)]
    assert "song_a" not in [s.id for s, _ in sample_others(songs["song_a"], pool, 5)]


def test_a_held_song_waits_for_a_person(real_video, tmp_path):
    video, thumbnail = real_video
    song_id = publishable_song(tmp_path, "held", video, thumbnail, combined=0.3)
    ledger = Ledger(ledger_path(tmp_path))
    ledger.mark(song_id, IDENTITY_STAGE, State.HELD, "the pick is nearer to 'x' than to its own original")
    assert waiting(ledger, tmp_path) == []
    result = CliRunner().invoke(app, ["approve", song_id, "--out", str(tmp_path)])
    assert result.exit_code == 0 and "it was held back" in result.stdout
    assert [w.song_id for w in waiting(ledger, tmp_path)] == [song_id]
    unknown = CliRunner().invoke(app, ["approve", "nope", "--out", str(tmp_path)])
    assert unknown.exit_code == 2 and "no such song" in unknown.stderr
