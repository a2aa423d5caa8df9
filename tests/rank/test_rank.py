"""rank: real candidates for song_a's clip, ranked against the original recording."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from covermill.models.generator import load_generator
from covermill.models.notes import Note
from covermill.tasks.arrange.styles import ArrangeSettings, arrange
from covermill.tasks.core.atomic import read_json
from covermill.tasks.core.audio import decode_to_wav
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import write_midi
from covermill.tasks.core.records import Candidate, Ranking, Song
from covermill.tasks.core.run_artifacts import artifact_key
from covermill.tasks.cover.render import RenderSettings, render_candidates
from covermill.tasks.rank.ranking import (
    RankSettings,
    combined_score,
    rank_candidates,
    ranking_table,
    reject_reasons,
    write_ranking,
)


@pytest.fixture(scope="module")
def song_a(clips, tmp_path_factory) -> tuple[Song, Path, list[Candidate], dict[str, Path]]:
    """song_a's clip as the original, and four rendered candidates for it."""
    work = tmp_path_factory.mktemp("rank")
    out = work / "out"
    song = Song(id="song-a", source=str(clips["song_a"]), source_id="file:song_a", title="Song A", duration=25.0,
                original=clips["song_a"], audio=decode_to_wav(clips["song_a"], work / "song_a.wav"))
    folder = SongFolder(out, song.id)
    basic_pitch = load_generator("basic-pitch")
    other_wav = decode_to_wav(clips["song_b"], work / "song_b.wav")
    playable = ArrangeSettings().styles["balanced"]
    notes = {
        "own": arrange(basic_pitch.transcribe(song.audio), playable),  # the song's own transcription, arranged
        "other": arrange(basic_pitch.transcribe(other_wav), playable),  # a fine cover, of a different song
        "banging": [Note(i * 0.2, i * 0.2 + 0.15, 59, 100) for i in range(125)],  # B3 over and over
        "empty": [],  # a generator that found nothing
    }
    candidates = [
        Candidate(id=name, generator="basic-pitch" if name in ("own", "other") else "test", style="raw",
                  midi=write_midi(found, folder.candidate_midi(name)), note_count=len(found))
        for name, found in notes.items()
    ]
    audio = render_candidates.fn(song, candidates, out, RenderSettings())
    return song, out, candidates, audio


@pytest.fixture(scope="module")
def ranking(song_a) -> Ranking:
    song, _, candidates, audio = song_a
    return rank_candidates(song.audio, candidates, audio, RankSettings())


def by_id(ranking: Ranking) -> dict:
    return {s.candidate_id: s for s in ranking.scores}


def test_the_songs_own_transcription_wins(ranking):
    assert ranking.pick == "own"
    assert [s.candidate_id for s in ranking.scores] == ["own", "other", "banging", "empty"]
    scores = by_id(ranking)
    assert scores["own"].qmax < scores["other"].qmax < scores["banging"].qmax
    assert scores["own"].combined < scores["other"].combined
    assert not scores["own"].rejected and not scores["other"].rejected
    assert 0 < scores["own"].aligned_share <= 1
    assert scores["own"].aligned_share > scores["other"].aligned_share


def test_the_bad_ones_are_rejected_with_reasons(ranking):
    scores = by_id(ranking)
    assert "one note struck 125 times in a row (B3, 100% of the song)" in scores["banging"].reject_reason
    assert "hardly any harmony" in scores["banging"].reject_reason
    assert scores["empty"].reject_reason == "it has no notes at all"
    assert scores["empty"].qmax == math.inf
    assert scores["empty"].aligned_share == 0.0


def test_equal_candidates_tie_by_id(song_a):
    song, _, candidates, audio = song_a
    own = next(c for c in candidates if c.id == "own")
    twins = [own.model_copy(update={"id": "z-twin"}), own.model_copy(update={"id": "a-twin"})]
    ranking = rank_candidates(song.audio, twins, {"z-twin": audio["own"], "a-twin": audio["own"]}, RankSettings())
    assert [s.candidate_id for s in ranking.scores] == ["a-twin", "z-twin"]
    assert ranking.scores[0].combined == ranking.scores[1].combined
    assert ranking.pick == "a-twin"


def test_everything_rejected_means_no_pick(song_a):
    song, _, candidates, audio = song_a
    bad = [c for c in candidates if c.id in ("banging", "empty")]
    ranking = rank_candidates(song.audio, bad, audio, RankSettings())
    assert ranking.pick is None
    assert all(s.rejected for s in ranking.scores)


def test_missing_audio_is_an_error(song_a):
    song, _, candidates, audio = song_a
    with pytest.raises(ValueError, match="own"):
        rank_candidates(song.audio, candidates, {k: v for k, v in audio.items() if k != "own"}, RankSettings())


def test_ranking_json_round_trips(song_a, ranking):
    _, out, _, _ = song_a
    path = write_ranking(SongFolder(out, "song-a").ranking, ranking)
    assert path.name == "ranking.json"
    assert Ranking.model_validate(read_json(path)) == ranking  # infinite Qmax included
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_ranking_table_rows(song_a, ranking):
    _, _, candidates, _ = song_a
    rows = ranking_table(ranking, candidates)
    assert [r["candidate"] for r in rows] == ["own", "other", "banging", "empty"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["verdict"] == "pick"
    assert rows[1]["verdict"] == "ok"
    assert rows[2]["verdict"].startswith("rejected: one note struck 125 times")
    assert rows[3]["qmax"] == "inf"
    json.dumps(rows, allow_nan=False)  # a Prefect artifact must be plain JSON


def test_artifact_key_is_lowercase_letters_digits_dashes():
    assert artifact_key("ranking", "0f3a9c") == "ranking-0f3a9c"
    assert artifact_key("video", "Song_A.1") == "video-song-a-1"


def defects(**changes: float) -> dict[str, float]:
    base = {"notes": 200.0, "notes_per_second": 8.0, "longest_run": 4.0, "longest_run_pitch": 60.0,
            "longest_run_share": 0.0, "repeat_share": 0.0, "pitch_class_entropy": 3.0,
            "longest_silence": 1.0, "silent_share": 0.0, "polyphony": 6.0, "outside_piano": 0.0}
    return {**base, **changes}


def test_combined_score_is_qmax_scaled_by_weighted_penalties():
    settings = RankSettings()
    assert combined_score(0.1, defects(), settings) == pytest.approx(0.1)
    assert combined_score(0.1, defects(longest_run_share=0.25), settings) == pytest.approx(0.1 * (1 + 2.0 * 0.25))
    assert combined_score(0.1, defects(pitch_class_entropy=1.0), settings) == pytest.approx(0.1 * (1 + 0.5))
    assert combined_score(0.1, defects(silent_share=0.4, repeat_share=0.4), settings) == pytest.approx(0.1 * (1 + 0.25 * 0.4 + 0.1 * 0.4))
    assert combined_score(math.inf, defects(), settings) == math.inf


def test_each_threshold_has_its_reason():
    settings = RankSettings()
    assert reject_reasons(defects(), 0.1, settings) == []
    assert reject_reasons(defects(notes=7.0), 0.1, settings) == ["only 7 notes (at least 16 needed)"]
    assert reject_reasons(defects(repeat_share=0.97), 0.1, settings)[0].startswith("97% of its notes repeat")
    assert reject_reasons(defects(silent_share=0.9), 0.1, settings) == ["silent for 90% of the song"]
    assert reject_reasons(defects(notes_per_second=55.0), 0.1, settings) == ["55 notes a second (at most 40 playable)"]
    assert reject_reasons(defects(polyphony=13.0), 0.1, settings) == ["13 notes sound at once (at most 10 playable)"]
    assert reject_reasons(defects(outside_piano=2.0), 0.1, settings) == ["2 notes lie beyond the piano's keys (A0 to C8)"]
    assert reject_reasons(defects(), math.inf, settings) == ["nothing in it lines up with the original (Qmax is infinite)"]
