"""Metadata: the packaged templates read well, YouTube's limits hold whatever a template says, errors name the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.records import Candidate, Score, Song
from covermill.tasks.media.metadata import MetadataSettings, fit_description, fit_title, render_metadata


def song(title: str = "Yesterday", artist: str = "The Beatles", source: str = "https://www.youtube.com/watch?v=abc123") -> Song:
    return Song(id="0123456789abcdef", source=source, source_id="youtube:abc123", title=title, artist=artist,
                duration=125.0, original=Path("/out/original.webm"), audio=Path("/out/audio.wav"))


CANDIDATE = Candidate(id="basic-pitch.two-hands.s7", generator="basic-pitch", style="two-hands", seed=7, midi=Path("/out/c.mid"))
SCORE = Score(candidate_id=CANDIDATE.id, qmax=0.0456, aligned_share=0.4, frames=900, defects={}, combined=0.05)


def test_the_default_templates_render_title_credit_model_and_ai_notice():
    title, description = render_metadata(song(), CANDIDATE, SCORE, MetadataSettings())
    assert title == "Yesterday - The Beatles (Piano Cover)"
    assert '"Yesterday" by The Beatles' in description
    assert "https://www.youtube.com/watch?v=abc123" in description
    assert "basic-pitch" in description and "two-hands" in description and "Seed: 7" in description
    assert "0.046" in description
    assert "AI-generated" in description and "covermill" in description
    assert "\n\n\n" not in description and description == description.strip()


def test_an_empty_artist_and_no_score_still_read_well():
    title, description = render_metadata(song(artist=""), CANDIDATE.model_copy(update={"seed": None}), None)
    assert title == "Yesterday (Piano Cover)"
    assert " by " not in description.split("\n")[0] and '"Yesterday", as a solo piano cover.' in description
    assert "Seed" not in description and "Qmax" not in description
    assert "  " not in title and " - " not in title


def test_a_local_source_path_stays_private():
    _, description = render_metadata(song(source="/home/someone/Music/secret.mp3"), CANDIDATE, SCORE)
    assert "/home/someone" not in description and "Source:" not in description


def test_a_300_character_title_is_cut_to_100_and_keeps_the_cover_suffix():
    long_title = ("Symphony No. 9 in D minor Op. 125 Choral " * 10)[:300]
    title, _ = render_metadata(song(title=long_title), CANDIDATE, SCORE)
    assert len(title) <= 100 and title.endswith("(Piano Cover)") and "\u2026" in title


def test_any_template_output_is_fitted_to_youtubes_limits(tmp_path):
    (tmp_path / "title.j2").write_text("{{ song.title }} <b>{{ song.artist }}</b>\n\n")
    (tmp_path / "description.j2").write_text("{% for i in range(3000) %}<ü> {{ i }} {% endfor %}")
    long_title = "word " * 60
    title, description = render_metadata(song(title=long_title), CANDIDATE, SCORE, MetadataSettings(templates_dir=tmp_path))
    assert 90 <= len(title) <= 100 and title.endswith("word\u2026")  # cut at a word
    assert "<" not in title and ">" not in title and "\n" not in title
    assert len(description.encode("utf-8")) <= 5000 and description.endswith("\u2026")
    assert "<" not in description and ">" not in description
    description.encode("utf-8").decode("utf-8")  # cut on a character boundary


def test_angle_brackets_are_replaced_in_title_and_description():
    title, description = render_metadata(song(title="I <3 You", artist="A>B"), CANDIDATE, SCORE)
    assert "<" not in title + description and ">" not in title + description
    assert "I \u20393 You" in title


def test_control_characters_from_tags_never_reach_youtube():
    """A file's tags may carry a terminal's escape sequences or a bell: gone from title, description and tags."""
    from covermill.tasks.publish.request import fit_tags

    title, description = render_metadata(song(title="Red\x1b[31m\x07Song\x00", artist="Band\x7f\x9b"), CANDIDATE, SCORE)
    assert title == "Red [31m Song - Band (Piano Cover)"
    assert [c for c in description if not c.isprintable()] == [c for c in description if c == "\n"]
    assert fit_tags(["Red\x1b[31m\x07Song", "tab\tbed"]) == ["Red [31m Song", "tab bed"]


def test_fitting_helpers_leave_short_text_alone():
    assert fit_title("  Short   title\n") == "Short title"
    assert fit_description("a  \r\n\r\n\r\n\r\nb\n") == "a\n\nb"
    assert fit_title("x" * 150).startswith("x" * 99) and len(fit_title("x" * 150)) == 100


def test_a_user_templates_dir_overrides_only_what_it_has(tmp_path):
    (tmp_path / "title.j2").write_text("{{ song.artist | upper }}: {{ song.title }} [{{ candidate.style }}]")
    title, description = render_metadata(song(), CANDIDATE, SCORE, MetadataSettings(templates_dir=tmp_path))
    assert title == "THE BEATLES: Yesterday [two-hands]"
    assert "AI-generated" in description  # the packaged description still applies


def test_a_typo_in_a_template_names_the_file_and_line(tmp_path):
    (tmp_path / "title.j2").write_text("{{ song.title }}\n{{ song.titel }}\n")
    with pytest.raises(CovermillError) as failure:
        render_metadata(song(), CANDIDATE, SCORE, MetadataSettings(templates_dir=tmp_path))
    message = str(failure.value)
    assert "title.j2, line 2" in message and "titel" in message and "\n" not in message


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    (tmp_path / "description.j2").write_text("ok\n\n{% if song.title %}\nno endif\n")
    with pytest.raises(CovermillError, match=r"description\.j2, line \d"):
        render_metadata(song(), CANDIDATE, SCORE, MetadataSettings(templates_dir=tmp_path))


def test_missing_templates_and_folders_are_one_sentence(tmp_path):
    with pytest.raises(CovermillError, match="title_template"):
        render_metadata(song(), CANDIDATE, SCORE, MetadataSettings(title_template="nope.j2"))
    with pytest.raises(CovermillError, match="templates_dir"):
        render_metadata(song(), CANDIDATE, SCORE, MetadataSettings(templates_dir=tmp_path / "missing"))
