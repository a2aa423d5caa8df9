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
from covermill.tasks.core.records import Candidate, Fluency, Ranking, Score, Song
from covermill.tasks.core.run_artifacts import artifact_key
from covermill.tasks.cover.render import RenderSettings, render_candidates
from covermill.tasks.rank.ranking import (
    RankSettings,
    apply_identity_floor,
    combined_score,
    fluency_terms,
    human_ipe,
    rank_candidates,
    ranking_table,
    reject_reasons,
    unplayable_reason,
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
    playable = ArrangeSettings().styles["two-hands"]  # every chord within two hands: never rejected as unplayable
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
    # a fine cover of another song is 4.5 times as far by Qmax: outside the identity floor
    assert scores["other"].outside_floor and not scores["own"].outside_floor


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


def test_every_candidate_has_its_fluency_in_ranking_json(song_a, ranking):
    _, out, _, _ = song_a
    written = {s["candidate_id"]: s for s in read_json(write_ranking(SongFolder(out, "song-a").ranking, ranking))["scores"]}
    own = written["own"]["fluency"]
    assert set(own) == {"rgc", "ipe", "wpd", "two_hand_share"}
    assert 0.0 <= own["rgc"] < 0.5 and 0.0 <= own["wpd"] < 2.0 and 0.9 <= own["two_hand_share"] <= 1.0
    # 25 s of a dense arrangement: about log2 of its onsets, far below the 10 bits of a whole song
    assert 5.0 < own["ipe"] < 10.0
    assert written["banging"]["fluency"]["rgc"] is None  # one interval over and over: no grid to measure against
    assert written["empty"]["fluency"] == {"rgc": None, "ipe": None, "wpd": None, "two_hand_share": 1.0}
    assert [s["outside_floor"] for s in written.values()] == [False, True, False, False]


def test_a_ranking_written_before_fluency_still_loads():
    old = {"candidate_id": "c", "qmax": 0.1, "aligned_share": 0.5, "frames": 100, "defects": {}, "combined": 0.1,
           "reject_reason": None}
    score = Score.model_validate(old)
    assert score.fluency is None and score.outside_floor is False
    assert ranking_table(Ranking(scores=[score], pick="c"), [])[0]["rgc"] == ""


def test_ranking_table_rows(song_a, ranking):
    _, _, candidates, _ = song_a
    rows = ranking_table(ranking, candidates)
    assert [r["candidate"] for r in rows] == ["own", "other", "banging", "empty"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert rows[0]["verdict"] == "pick"
    assert rows[1]["verdict"] == "ok"
    assert [r["identity floor"] for r in rows] == ["inside", "outside", "", ""]
    assert rows[2]["verdict"].startswith("rejected: one note struck 125 times")
    assert rows[3]["qmax"] == "inf"
    own = by_id(ranking)["own"].fluency
    assert (rows[0]["rgc"], rows[0]["ipe"], rows[0]["wpd"]) == (round(own.rgc, 3), round(own.ipe, 2), round(own.wpd, 2))
    assert rows[0]["two hands"] == f"{own.two_hand_share:.1%}"
    assert rows[3]["rgc"] == rows[3]["wpd"] == ""  # the empty candidate measures nothing
    json.dumps(rows, allow_nan=False)  # a Prefect artifact must be plain JSON


def test_artifact_key_is_lowercase_letters_digits_dashes():
    assert artifact_key("ranking", "0f3a9c") == "ranking-0f3a9c"
    assert artifact_key("video", "Song_A.1") == "video-song-a-1"


def defects(**changes: float) -> dict[str, float]:
    base = {"notes": 200.0, "notes_per_second": 8.0, "longest_run": 4.0, "longest_run_pitch": 60.0,
            "longest_run_share": 0.0, "longest_run_dominance": 1.0, "repeat_share": 0.0, "pitch_class_entropy": 3.0,
            "longest_silence": 1.0, "silent_share": 0.0, "polyphony": 6.0, "outside_piano": 0.0}
    return {**base, **changes}


def test_combined_score_is_qmax_scaled_by_weighted_penalties():
    settings = RankSettings()
    assert combined_score(0.1, defects(), settings) == pytest.approx(0.1)
    assert combined_score(0.1, defects(longest_run_share=0.25), settings) == pytest.approx(0.1 * (1 + 2.0 * 0.25))
    assert combined_score(0.1, defects(pitch_class_entropy=1.0), settings) == pytest.approx(0.1 * (1 + 0.5))
    assert combined_score(0.1, defects(silent_share=0.4, repeat_share=0.4), settings) == pytest.approx(0.1 * (1 + 0.25 * 0.4 + 0.1 * 0.4))
    assert combined_score(math.inf, defects(), settings) == math.inf
    # an ostinato (its strikes a fifth of the notes struck meanwhile) is the song's, not banging
    ostinato = defects(longest_run_share=0.25, longest_run_dominance=0.2)
    assert combined_score(0.1, ostinato, settings) == pytest.approx(0.1)
    assert combined_score(0.1, ostinato, RankSettings(min_run_dominance=0.0)) == pytest.approx(0.1 * (1 + 2.0 * 0.25))


def test_a_long_run_is_banging_only_where_it_dominates():
    settings = RankSettings()
    banged = defects(longest_run=90.0, longest_run_pitch=60.0, longest_run_share=0.4, longest_run_dominance=0.9)
    assert reject_reasons(banged, 0.1, settings) == ["one note struck 90 times in a row (C4, 40% of the song)"]
    assert reject_reasons({**banged, "longest_run_dominance": 0.3}, 0.1, settings) == []
    assert reject_reasons({**banged, "longest_run_dominance": 0.3}, 0.1, RankSettings(min_run_dominance=0.0)) != []
    older = {k: v for k, v in banged.items() if k != "longest_run_dominance"}  # defects of an older ranking.json
    assert reject_reasons({**older, "longest_run_share": 0.4}, 0.1, settings) != []


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


# ---------------------------------------------------------------- fluency in the combined score, hand-set figures

HUMAN = Fluency(rgc=0.042, ipe=10.13, wpd=0.49, two_hand_share=0.993)  # Etude's human covers, over 216 s
LITERAL = Fluency(rgc=0.114, ipe=10.13 + 2.0, wpd=0.09, two_hand_share=0.804)  # AMT-APC's figures, IPE 2 bits high


def test_human_figures_cost_nothing_and_transcription_like_ones_cost_every_weight():
    settings = RankSettings()
    assert sum(fluency_terms(HUMAN, 216.0, settings).values()) == pytest.approx(0.0, abs=1e-12)
    assert fluency_terms(LITERAL, 216.0, settings) == pytest.approx(
        {"rgc": settings.rgc_weight, "ipe": settings.ipe_weight, "wpd": settings.wpd_weight, "hands": settings.hands_weight})
    assert combined_score(0.04, defects(), settings, HUMAN, 216.0) == pytest.approx(0.04)
    assert combined_score(0.04, defects(), settings, LITERAL, 216.0) == pytest.approx(0.04 * (1 + 0.3 + 0.2 + 0.1 + 0.3))


def test_fluency_terms_are_bounded():
    settings = RankSettings()
    wild = Fluency(rgc=5.0, ipe=40.0, wpd=60.0, two_hand_share=0.0)
    assert fluency_terms(wild, 216.0, settings) == pytest.approx(fluency_terms(LITERAL, 216.0, settings))
    # a steadier grid and more playable chords than a human's are not penalised; IPE and WPD pull from both sides
    steady = Fluency(rgc=0.0, ipe=10.13, wpd=0.49, two_hand_share=1.0)
    assert sum(fluency_terms(steady, 216.0, settings).values()) == 0.0
    low = fluency_terms(Fluency(rgc=None, ipe=9.13, wpd=0.29), 216.0, settings)
    assert low == pytest.approx({"hands": 0.0, "ipe": 0.2 * 0.5, "wpd": 0.1 * 0.5})
    # what cannot be measured adds nothing
    assert fluency_terms(Fluency(), 216.0, settings) == {"hands": 0.0}
    assert combined_score(0.1, defects(), settings, None) == combined_score(0.1, defects(), settings)


def test_ipe_is_compared_with_a_human_cover_of_the_same_length():
    settings = RankSettings()
    assert human_ipe(216.0, settings) == pytest.approx(10.13)
    assert human_ipe(54.0, settings) == pytest.approx(8.13)  # a quarter of the length, two bits fewer
    clip = Fluency(ipe=8.13)
    assert fluency_terms(clip, 54.0, settings)["ipe"] == pytest.approx(0.0)
    assert fluency_terms(clip, 216.0, settings)["ipe"] == pytest.approx(0.2)  # as a whole song: two bits short
    assert fluency_terms(Fluency(ipe=8.63), 54.0, settings)["ipe"] == pytest.approx(0.2 * 0.5 / 2.0)


def score(name: str, qmax: float, fluency: Fluency, reject: str | None = None) -> Score:
    settings = RankSettings()
    return Score(candidate_id=name, qmax=qmax, aligned_share=0.5, frames=1000, defects=defects(),
                 combined=combined_score(qmax, defects(), settings, fluency, 216.0), reject_reason=reject, fluency=fluency)


def test_a_fluent_cover_beats_a_slightly_closer_literal_one():
    literal, fluent = score("literal", 0.040, LITERAL), score("fluent", 0.044, HUMAN)
    ranked = apply_identity_floor([literal, fluent], RankSettings().identity_factor)
    assert [s.candidate_id for s in ranked] == ["fluent", "literal"]
    assert not any(s.outside_floor for s in ranked)


def test_identity_is_a_floor_fluency_cannot_lift_a_cover_past():
    literal = score("literal", 0.040, LITERAL)  # combined 0.076
    far = score("far", 0.070, HUMAN)  # 1.75 times as far, combined 0.070: lower, but it stops being the same song
    assert far.combined < literal.combined
    ranked = apply_identity_floor([far, literal], RankSettings().identity_factor)
    assert [s.candidate_id for s in ranked] == ["literal", "far"]
    assert [s.outside_floor for s in ranked] == [False, True]
    # the floor is measured from the best accepted candidate: a closer rejected one does not move it
    banged = score("banged", 0.020, HUMAN, reject="one note struck 125 times in a row")
    ranked = apply_identity_floor([banged, far, literal], 1.5)
    assert [s.candidate_id for s in ranked] == ["literal", "far", "banged"]
    assert not ranked[2].outside_floor
    # a factor wide enough lets fluency decide again
    assert [s.candidate_id for s in apply_identity_floor([literal, far], 2.0)] == ["far", "literal"]


def test_a_cover_two_hands_cannot_play_is_rejected():
    notes = {"notes": 100.0}
    assert unplayable_reason(1.0, notes, RankSettings()) is None
    assert unplayable_reason(0.97, notes, RankSettings()) == (
        "3.0% of its chords are more than two hands can strike (five keys within 14 semitones each)")
    assert unplayable_reason(0.97, notes, RankSettings(min_two_hand_share=0.9)) is None
    assert unplayable_reason(0.0, {"notes": 0.0}, RankSettings()) is None  # "no notes at all" says it already
