"""The quality bench's corpus (bench/corpus.py) and its cutter (bench/cut_corpus.py).

The corpus's own packages are not installed where the tests run, so its entries are checked for
structure only; the cutter is checked on entries that point at planetblupi (make test installs it)
and at files made here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import corpus  # noqa: E402
import cut_corpus  # noqa: E402

from conftest import MUSIC_DIR  # noqa: E402

SR = 11025


def duration(path: Path) -> float:
    return cut_corpus.duration_of(path)


def decode(path: Path, start: float = 0.0, seconds: float | None = None) -> np.ndarray:
    stretch = ["-ss", str(start)] + (["-t", str(seconds)] if seconds else [])
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", *stretch, "-i", str(path), "-ac", "1", "-ar", str(SR), "-f", "f32le", "-"],
                         check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def tone(path: Path, seconds: float) -> Path:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    str(path)], check=True)
    return path


# ---------------------------------------------------------------- the corpus's structure

def test_held_out_split_has_at_least_30_songs():
    assert len(corpus.select("heldout")) >= 30


def test_every_genre_sits_in_both_splits():
    for split in corpus.SPLITS:
        assert {s.genre for s in corpus.select(split)} == set(corpus.GENRES), split


def test_tuning_split_is_balanced_beyond_planetblupi():
    others = Counter(s.genre for s in corpus.select("tune") if not s.package.startswith("planetblupi"))
    assert set(others) == set(corpus.GENRES) and min(others.values()) >= 2


def test_held_out_split_has_several_ambient_songs():
    assert sum(s.genre == "ambient" for s in corpus.select("heldout")) >= 5


def test_entries_are_well_formed():
    names = [s.name for s in corpus.SONGS]
    assert len(set(names)) == len(names)
    for song in corpus.SONGS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", song.name), song.name
        assert song.split in corpus.SPLITS
        assert song.genre in corpus.GENRES
        assert song.package in corpus.PACKAGES
        assert song.path.startswith("/usr/share/")
        assert song.start >= 0
        if song.member is not None:
            assert song.path.endswith(".pk3") and not song.member.startswith("/")


def test_planetblupi_is_all_tuning_and_cut_where_bench_quality_cuts():
    planetblupi = [s for s in corpus.SONGS if s.package.startswith("planetblupi")]
    assert len(planetblupi) == 10
    assert all(s.split == "tune" and s.start == 30 for s in planetblupi)


def test_the_corpus_is_a_fixed_list():
    assert isinstance(corpus.SONGS, tuple)
    assert corpus.select("heldout") == [s for s in corpus.SONGS if s.split == "heldout"]
    assert len(corpus.select("all")) == len(corpus.select("tune")) + len(corpus.select("heldout"))


def test_every_recording_appears_once():
    recordings = Counter((s.path, s.member) for s in corpus.SONGS)
    assert max(recordings.values()) == 1


# ---------------------------------------------------------------- the cutter

def planetblupi_song(start: float) -> corpus.Song:
    source = MUSIC_DIR / "music004.ogg"
    if not source.exists():
        pytest.fail("test music missing: install Debian's planetblupi-music-ogg (make test does) or set COVERMILL_TEST_MUSIC")
    return corpus.Song("test-music004", "planetblupi-music-ogg", str(source), "game-synth", start, "tune")


def test_cutter_cuts_the_asked_seconds_from_the_asked_start(tmp_path):
    song = planetblupi_song(start=42.5)
    made = cut_corpus.cut_corpus([song], tmp_path / "cut", seconds=8.0, label="test")
    assert made == [tmp_path / "cut" / "test-music004.ogg"]
    assert duration(made[0]) == pytest.approx(8.0, abs=0.1)
    cut = decode(made[0])
    assert similarity(cut, decode(Path(song.path), 42.5, 8.0)) > 0.9
    assert similarity(cut, decode(Path(song.path), 44.5, 8.0)) < 0.5
    notes = cut_corpus.read_midi(made[0].with_suffix(".mid"))  # planetblupi's score, cut at the same place
    assert notes and min(n.start for n in notes) >= 0 and max(n.end for n in notes) <= 8.0 + 1e-6
    assert (tmp_path / "cut" / ".cut").read_text().startswith("corpus test 8 ")


def test_cutter_is_idempotent_and_refuses_another_cut_in_the_same_folder(tmp_path):
    song = planetblupi_song(start=30)
    out = tmp_path / "cut"
    (target,) = cut_corpus.cut_corpus([song], out, seconds=3.0, label="test")
    first = target.stat().st_mtime_ns
    cut_corpus.cut_corpus([song], out, seconds=3.0, label="test")
    assert target.stat().st_mtime_ns == first
    with pytest.raises(SystemExit, match="another cut"):
        cut_corpus.cut_corpus([song], out, seconds=5.0, label="test")


def test_a_song_shorter_than_asked_is_cut_whole_and_said_so(tmp_path, capsys):
    source = tone(tmp_path / "short.wav", 4.0)
    song = corpus.Song("short", "none", str(source), "ambient", 2.0, "heldout")
    (target,) = cut_corpus.cut_corpus([song], tmp_path / "cut", seconds=10.0)
    assert duration(target) == pytest.approx(4.0, abs=0.1)
    assert "cut whole" in capsys.readouterr().err


def test_a_late_start_moves_earlier_to_keep_the_length(tmp_path, capsys):
    source = tone(tmp_path / "tone.wav", 6.0)
    song = corpus.Song("late", "none", str(source), "ambient", 5.0, "heldout")
    (target,) = cut_corpus.cut_corpus([song], tmp_path / "cut", seconds=3.0)
    assert duration(target) == pytest.approx(3.0, abs=0.1)
    assert "cut from 3.0 s" in capsys.readouterr().err


def test_a_member_of_a_zip_archive_is_cut(tmp_path):
    archive = tmp_path / "music.pk3"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as pk3:
        pk3.write(tone(tmp_path / "tone.ogg", 5.0), "sound/cdtracks/tone.ogg")
    song = corpus.Song("zipped", "none", str(archive), "electronic", 1.0, "heldout", "sound/cdtracks/tone.ogg")
    out = tmp_path / "cut"
    (target,) = cut_corpus.cut_corpus([song], out, seconds=2.0)
    assert duration(target) == pytest.approx(2.0, abs=0.1)
    assert sorted(p.name for p in out.iterdir()) == [".cut", "zipped.ogg"]


def test_missing_recordings_name_their_package(tmp_path):
    song = corpus.Song("absent", "ufoai-music", "/nonexistent/0music.pk3", "ambient", 0, "heldout", "music/x.ogg")
    with pytest.raises(SystemExit, match="install ufoai-music"):
        cut_corpus.cut_corpus([song], tmp_path / "cut", seconds=60.0)
    assert not (tmp_path / "cut").exists()


def test_cli_cuts_a_split_into_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "SONGS", (planetblupi_song(30), corpus.Song("other", "none", "/x.ogg", "rock", 0, "heldout")))
    assert cut_corpus.main(["--split", "tune", "--seconds", "2", str(tmp_path / "cut")]) == 0
    assert sorted(p.name for p in (tmp_path / "cut").glob("*.ogg")) == ["test-music004.ogg"]
