"""The nightly run over real playlists: an RSS feed and audio served from 127.0.0.1 (read by
yt-dlp's flat extraction), a folder, a text file; a broken entry does not stop the others, and a
second night processes nothing new."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import yaml
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from covermill.flows.cli import app
from covermill.flows.nightly import DIED_DURING, settled, summary_markdown
from covermill.flows.nightly_settings import NightlySettings
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import Ledger, State
from covermill.tasks.core.records import NightlyResult
from covermill.tasks.cover.playlist import Entry, read_playlist

from helpers import ALLOW_LOOPBACK, http_server, loopback_downloads

INSIDE = "http://169.254.169.254/latest/meta-data/"  # where a cloud's metadata service answers


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def write_feed(folder: Path, base_url: str, items: list[tuple[str, str]]) -> str:
    """An RSS feed (as podcasts publish) whose items enclose audio files (names under `base_url`, or
    addresses); returns its URL."""
    body = "".join(
        f"<item><title>{escape(title)}</title><guid>{escape(name)}</guid>"
        f'<enclosure url="{escape(name if "://" in name else f"{base_url}/{name}")}" type="audio/ogg" length="1"/></item>'
        for title, name in items
    )
    (folder / "feed.xml").write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Night list</title>{body}</channel></rss>')
    return f"{base_url}/feed.xml"


def test_a_feed_is_read_flat_with_titles_and_plain_addresses(tmp_path, short_clips):
    shutil.copy(short_clips["song_a"], tmp_path / "song_a.ogg")
    with http_server(tmp_path) as base:
        url = write_feed(tmp_path, base, [("Song A", "song_a.ogg"), ("Gone", "gone.ogg"), ("Song A again", "song_a.ogg")])
        entries = read_playlist(url, loopback_downloads())
        with pytest.raises(CovermillError, match=r"^http://127\.0\.0\.1:\d+/feed\.xml: not downloaded, it points to 127\.0\.0\.1, "
                                                 r"a loopback address \(this machine\); add 127\.0\.0\.1 to download\.allow_private"):
            read_playlist(url)  # the feed itself is held to the same addresses
    assert [(e.source, e.title) for e in entries] == [(f"{base}/song_a.ogg", "Song A"), (f"{base}/gone.ogg", "Gone")]


def test_folders_and_text_files_are_playlists_too(tmp_path, short_clips):
    (tmp_path / "music").mkdir()
    shutil.copy(short_clips["song_a"], tmp_path / "music" / "a.ogg")
    shutil.copy(short_clips["song_b"], tmp_path / "music" / "b.ogg")
    assert [Path(e.source).name for e in read_playlist(str(tmp_path / "music"))] == ["a.ogg", "b.ogg"]
    listing = tmp_path / "songs.txt"
    listing.write_text("# tonight\nmusic/b.ogg\n\nhttps://example.com/c.ogg\nmusic/b.ogg\n")
    assert [e.source for e in read_playlist(str(listing))] == [str(tmp_path / "music" / "b.ogg"), "https://example.com/c.ogg"]
    for bad, words in ((tmp_path / "nothing.txt", "no such playlist"), (tmp_path / "music" / "a.ogg", "not a playlist")):
        with pytest.raises(CovermillError, match=words):
            read_playlist(str(bad))
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    with pytest.raises(CovermillError, match="empty"):
        read_playlist(str(tmp_path / "empty.txt"))


@pytest.fixture(scope="module")
def night(prefect_server, short_clips, tmp_path_factory):
    """One nightly run over a served feed of two real songs, one broken entry and one pointing inside the network."""
    root = tmp_path_factory.mktemp("nightly")
    served = root / "served"
    served.mkdir()
    shutil.copy(short_clips["song_a"], served / "song_a.ogg")
    shutil.copy(short_clips["song_b"], served / "song_b.ogg")
    config = root / "config.yaml"
    # fewer candidates than the defaults keep the night short; max_attempts 1 settles the broken one
    config.write_text(yaml.safe_dump({"arrange": {"seeds": [0]}, "nightly": {"max_attempts": 1}, "download": ALLOW_LOOPBACK}))
    out = root / "out"
    with http_server(served) as base:
        url = write_feed(served, base, [("Song A", "song_a.ogg"), ("Broken", "missing.ogg"), ("Inside", INSIDE), ("Song B", "song_b.ogg")])
        # the first night may start three songs: the fourth waits for the next night
        first = invoke("nightly", url, "--out", str(out), "--config", str(config), "--max-songs", "3")
        second = invoke("nightly", url, "--out", str(out), "--config", str(config), "--max-songs", "2")
        stages_after_second = stage_rows(out)
        third = invoke("nightly", url, "--out", str(out), "--config", str(config))
    return out, base, (first, second), third, stages_after_second


def stage_rows(out: Path) -> list[tuple]:
    with sqlite3.connect(ledger_path(out)) as db:
        return db.execute("SELECT song_id, stage, state, updated FROM stages ORDER BY song_id, stage").fetchall()


@pytest.mark.server
def test_a_broken_entry_is_recorded_and_the_others_are_covered(night):
    out, base, (first, second), _, _ = night
    assert first.exit_code == 1  # a failed song is reported ...
    assert "1 done, 0 rejected, 2 failed, 0 already settled, 1 left for another night" in first.stdout
    assert f"{base}/missing.ogg" in first.stdout and "404" in first.stdout
    refusal = (f"{INSIDE}: not downloaded, it points to 169.254.169.254, a link-local address (where a cloud's metadata "
               "service answers); add 169.254.169.254 to download.allow_private in config.yaml if you mean it.")
    assert refusal in " ".join(first.stdout.split())  # the summary may wrap it
    assert f"{base}/song_b.ogg: over nightly.max_songs (3)" in first.stdout
    assert second.exit_code == 0, second.output  # ... and the others are done, one night later
    assert "1 done, 0 rejected, 0 failed, 3 already settled, 0 left for another night" in second.stdout
    ledger = Ledger(ledger_path(out))
    for name in ("song_a", "song_b"):
        state, _, _ = ledger.entry(f"{base}/{name}.ogg")
        assert state == "done"
    assert ledger.entry(f"{base}/missing.ogg")[0] == "failed"
    assert ledger.entry(INSIDE)[:2] == ("failed", refusal)
    songs = ledger.songs()
    assert sorted(s.title for s in songs) == ["song_a", "song_b"]
    for song in songs:  # a dry run: each video waits with the exact request it would send
        request = json.loads(SongFolder(out, song.id).upload_request.read_text())
        assert request["request"]["videos.insert"]["body"]["snippet"]["title"].startswith(song.title)
        assert f"Source: {song.source}" in request["request"]["videos.insert"]["body"]["snippet"]["description"]
    assert "dry run: 2 uploaded" not in first.stdout and "## Upload" in first.stdout
    index = (out / "gallery" / "index.html").read_text()  # the review gallery lists both songs and the broken entry
    assert all(f'id="song-{song.id}"' in index for song in songs)
    assert f"{base}/missing.ogg" in index and "404" in index


@pytest.mark.server
def test_a_second_night_processes_nothing_new(night):
    out, _, _, third, stages_after_second = night
    assert third.exit_code == 0, third.output
    assert "0 done, 0 rejected, 0 failed, 4 already settled" in third.stdout
    assert stage_rows(out) == stages_after_second  # no stage of any song ran again


def test_a_song_whose_run_died_counts_as_a_failed_attempt(tmp_path):
    ledger = Ledger(ledger_path(tmp_path))
    entry = Entry(source="https://example.com/crashes-the-worker.ogg")
    limits = NightlySettings(max_attempts=2)
    for _night in (1, 2):
        assert settled(ledger, entry, limits) is None  # tried again tonight...
        ledger.record_entry(entry.source, State.RUNNING, "being covered")  # ...and the process is killed
    reason = settled(ledger, entry, limits)
    assert reason is not None and reason.startswith("failed 2 times, left alone: the run stopped while covering it")
    assert ledger.entry(entry.source)[:2] == (State.FAILED, DIED_DURING)


def test_the_nightly_summary_shows_hostile_titles_as_text():
    hostile = "<script>alert(1)</script> [click](javascript:alert(1)) **$(touch x)** %[pixel:p]\x1b[31m"
    summary = NightlyResult(playlist=f"https://example.com/{hostile}", done={hostile: "video made"},
                            failed={"https://example.com/x.ogg": f"{hostile}: FFmpeg cannot read this file"})
    html = MarkdownIt().render(summary_markdown(summary))
    assert "<script>" not in html and "<a " not in html and "<strong>" not in html and "\x1b" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; [click](javascript:alert(1)) **$(touch x)** %[pixel:p]" in html
