"""The review gallery, opened in a real browser (headless chromium) from a real HTTP server: a real
dry run's song, a published one and one whose download failed under a hostile title."""

from __future__ import annotations

import json
import math
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from covermill.flows.cli import app
from covermill.tasks.core.layout import GalleryFolder, SongFolder, ledger_path, song_id_for
from covermill.tasks.core.ledger import Ledger, State
from covermill.tasks.core.records import Song, Upload
from covermill.tasks.media.gallery import GallerySettings, index_path, song_page_path, write_gallery, write_song_page

from browser import dump_dom, open_page, screenshot
from helpers import http_server, publishable_song

HOSTILE_TITLE = '<script>alert("pwned")</script> Tom & Jerry\'s "Live" &amp; more'
HOSTILE_ARTIST = "AC/DC & <b>Friends</b>"
DOWNLOAD_ERROR = "https://example.com/watch?v=1&list=2: could not download (HTTP Error 403: Forbidden); check the URL."
VIDEO_ID = "dQw4w9WgXcQ"
# Asks every player for its file's header, as pressing play would, and reports what it decoded.
LOAD_AUDIO = """Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(done => {
  a.addEventListener('loadedmetadata', () => done({src: a.currentSrc, duration: a.duration}), {once: true});
  a.addEventListener('error', () => done({src: a.currentSrc, error: a.error && a.error.code}), {once: true});
  a.preload = 'metadata'; a.load();
})))"""
# The same for the video player: the browser must be able to decode what YouTube will get.
LOAD_VIDEO = LOAD_AUDIO.replace("'audio'", "'video'").replace(
    "duration: a.duration}", "duration: a.duration, width: a.videoWidth, height: a.videoHeight}")
# What the tests read from the page as the browser built it.
READ_PAGE = """({
  h1: document.querySelector('h1') && document.querySelector('h1').textContent,
  artist: document.querySelector('.artist') && document.querySelector('.artist').textContent,
  title: document.title,
  scripts: document.scripts.length,
  cards: [...document.querySelectorAll('.song')].map(card => ({id: card.id, title: card.querySelector('.title').textContent,
                                                               status: card.querySelector('.status').textContent.trim()})),
  scores: [...document.querySelectorAll('table.scores tbody tr')].map(tr => [...tr.cells].map(td => td.textContent.trim())),
  links: [...document.querySelectorAll('a')].map(a => a.href),
  rolls: [...document.querySelectorAll('table.scores img.roll')].filter(i => i.complete && i.naturalHeight === 88)
           .map(i => i.src.split('/').pop()),
})"""


class Sources(HTMLParser):
    """The src of every <audio>, <img> and <video> (and any <script>) in an HTML document."""

    def __init__(self, html: str):
        super().__init__()
        self.found: dict[str, list[dict[str, str | None]]] = {"audio": [], "img": [], "video": [], "script": []}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.found:
            self.found[tag].append(dict(attrs))


def add_failed_download(out: Path) -> str:
    """A song whose download failed, as a playlist run records it: a ledger row, no folder."""
    song_id = song_id_for("test:hostile")
    folder = SongFolder(out, song_id)
    ledger = Ledger(ledger_path(out))
    ledger.record_song(Song(id=song_id, source="https://example.com/watch?v=1&list=2", source_id="test:hostile",
                            title=HOSTILE_TITLE, artist=HOSTILE_ARTIST, duration=0.0,
                            original=folder.original(".webm"), audio=folder.audio))
    ledger.mark(song_id, "download", State.FAILED, DOWNLOAD_ERROR)
    return song_id


def add_published(out: Path, real_id: str) -> str:
    """A song on YouTube, made of copies of the real song's video and thumbnail."""
    real = SongFolder(out, real_id)
    song_id = publishable_song(out, "published song", real.video, real.thumbnail, combined=0.05)
    ledger = Ledger(ledger_path(out))
    ledger.record_upload(song_id, Upload(started=time.time(), media_bytes=real.video.stat().st_size,
                                         video_id=VIDEO_ID, day="2025-01-01"))
    ledger.mark(song_id, "upload", State.DONE, VIDEO_ID)
    return song_id


@pytest.fixture(scope="module")
def gallery(prefect_server, clips, tmp_path_factory) -> dict[str, Any]:
    """One real dry run, then a published song and a failed one, then the gallery over all three."""
    out = tmp_path_factory.mktemp("gallery-out")
    result = CliRunner().invoke(app, ["run", str(clips["song_a"]), "--out", str(out), "--dry-run"], catch_exceptions=False)
    assert result.exit_code == 0, result.stdout + result.stderr
    (real,) = [p.name for p in out.iterdir() if p.is_dir() and p.name != "gallery"]
    published = add_published(out, real)
    failed = add_failed_download(out)
    (out / "youtube-token.json").write_text('{"refresh_token": "SECRET-REFRESH-TOKEN"}')  # as `covermill auth` leaves it
    index = write_gallery(out)
    site = GalleryFolder(out).root
    with http_server(site) as base:  # what the README says to serve
        yield {"out": out, "site": site, "index": index, "base": base, "real": real, "published": published, "failed": failed,
               "clip": clips["song_a"], "songs": [real, published, failed]}


@pytest.fixture(scope="module")
def seen(gallery) -> dict[str, dict[str, Any]]:
    """Each page as one browser saw it: its errors, its DOM's facts, and (song pages) what its players decoded."""
    out, site, base = gallery["out"], gallery["site"], gallery["base"]
    pages = {"index": index_path(out)} | {song: song_page_path(out, song) for song in gallery["songs"]}
    found = {}
    with open_page("about:blank") as page:
        for name, path in pages.items():
            url = f"{base}/{path.relative_to(site).as_posix()}"
            start = len(page.errors)
            page.goto(url)
            facts = page.evaluate(READ_PAGE)
            audio = page.evaluate(LOAD_AUDIO)
            video = page.evaluate(LOAD_VIDEO)
            page.settle()  # the players' loads report here
            found[name] = {"url": url, "errors": page.errors[start:], "audio": audio, "video": video, **facts}
    return found


def shown(number: float | str) -> str:
    """A score as the table prints it; ranking.json writes an infinite one as "Infinity"."""
    return "\u221e" if math.isinf(float(number)) else f"{float(number):.3f}"


def blank_or(value: float | None, form: str) -> str:
    """A fluency measure as the table prints it: blank where there was too little to measure."""
    return "" if value is None else form.format(value)


def expected_verdict(score: dict[str, Any], pick: str | None) -> str:
    if score["candidate_id"] == pick:
        return "pick"
    if score["reject_reason"]:
        return f"rejected: {score['reject_reason']}"
    return "outside the identity floor: far less similar than the closest" if score["outside_floor"] else ""


def served_file(site: Path, base: str, page_url: str, src: str) -> Path:
    """The file under the served `site` that a relative src on `page_url` names, as the server resolves it."""
    url = urljoin(page_url, src)
    assert url.startswith(base + "/"), f"{src} leaves the gallery: {url}"
    path = (site / unquote(urlsplit(url).path).lstrip("/")).resolve()
    assert path.is_relative_to(site.resolve()), path
    return path


@pytest.mark.browser
@pytest.mark.server
def test_every_player_and_picture_points_at_a_file_that_exists(gallery):
    out, site, base = gallery["out"], gallery["site"], gallery["base"]
    assert gallery["index"] == out / "gallery" / "index.html" and gallery["index"].is_file()
    counts = {}
    for name, path in [("index", index_path(out))] + [(s, song_page_path(out, s)) for s in gallery["songs"]]:
        assert path.is_file(), path
        url = f"{base}/{path.relative_to(site).as_posix()}"
        dom = Sources(dump_dom(url)).found  # the DOM chromium built, not the file we wrote
        assert dom["script"] == []
        for tag in ("audio", "img", "video"):
            for element in dom[tag]:
                target = served_file(site, base, url, element["src"])
                assert target.is_file() and target.stat().st_size > 0, f"{name}: <{tag} src={element['src']}> -> {target}"
        assert all(a.get("controls") is not None and a.get("preload") == "none" for a in dom["audio"] + dom["video"])
        counts[name] = (len(dom["audio"]), len(dom["img"]), len(dom["video"]))
    candidates = len(json.loads(SongFolder(out, gallery["real"]).ranking.read_text())["scores"])
    # original, winner and the top five candidates, then every candidate's row: its player and piano
    # roll, and page 1 of the score; the published copy has its thumbnail and video; the failed song nothing
    assert counts[gallery["real"]] == (2 + GallerySettings().top_candidates + candidates, 2 + candidates, 1)
    assert counts[gallery["published"]] == (0, 1, 1)
    assert counts[gallery["failed"]] == (0, 0, 0)
    assert counts["index"] == (0, 2, 0)


@pytest.mark.browser
@pytest.mark.server
def test_the_browser_sees_no_errors_and_every_player_decodes(gallery, seen):
    for name, page in seen.items():
        assert page["errors"] == [], (name, page["url"])
        assert page["scripts"] == 0
    players = seen[gallery["real"]]["audio"]
    assert len(players) == 7 + len(seen[gallery["real"]]["scores"])  # the Listen section, then one per table row
    for player in players:
        assert "error" not in player and player["duration"] > 1.0, player
        if player["src"].endswith(".flac"):
            # the clip lasts 25 s; a rendered cover adds the piano's release. (Only FLAC's header
            # states its length: an OGG's is estimated unless the server answers range requests.)
            assert 24.0 < player["duration"] < 30.0, player
    assert players[0]["src"].endswith("/original.ogg") and players[1]["src"].endswith("/winner.flac")
    (video,) = seen[gallery["real"]]["video"]
    assert "error" not in video and (video["width"], video["height"]) == (1280, 720), video
    assert 24.0 < video["duration"] < 30.0 and video["src"].endswith("/video.mp4")


@pytest.mark.browser
@pytest.mark.server
def test_the_score_table_follows_the_ranking(gallery, seen):
    ranking = json.loads(SongFolder(gallery["out"], gallery["real"]).ranking.read_text())
    rows = seen[gallery["real"]]["scores"]
    assert [row[2] for row in rows] == [s["candidate_id"] for s in ranking["scores"]]
    assert [row[0] for row in rows] == [str(n) for n in range(1, len(rows) + 1)]
    assert rows[0][-1] == "pick" and rows[0][2] == ranking["pick"]
    for row, score in zip(rows, ranking["scores"]):
        assert row[7] == shown(score["qmax"]) and row[14] == shown(score["combined"])
        assert row[9].endswith(f"polyphony {int(score['defects']['polyphony'])}")
        fluency = score["fluency"]
        assert row[10:14] == [blank_or(fluency["rgc"], "{:.3f}"), blank_or(fluency["ipe"], "{:.2f}"),
                              blank_or(fluency["wpd"], "{:.2f}"), f"{fluency['two_hand_share']:.1%}"]
        assert row[15] == expected_verdict(score, ranking["pick"])
    # the players follow the same order: the Listen section's top five, then one per row
    players = [p["src"].rsplit("/", 1)[1] for p in seen[gallery["real"]]["audio"][2:]]
    assert players[:5] == [f"{s['candidate_id']}.flac" for s in ranking["scores"][:5]]
    assert players[7 - 2:] == [f"{s['candidate_id']}.flac" for s in ranking["scores"]]
    assert seen[gallery["real"]]["rolls"] == [f"{s['candidate_id']}.png" for s in ranking["scores"]]


@pytest.mark.server
def test_serving_the_gallery_exposes_nothing_but_its_pages_and_the_files_they_show(gallery):
    out, site, base = gallery["out"], gallery["site"], gallery["base"]
    assert (out / "ledger.sqlite").is_file() and (out / "youtube-token.json").is_file()
    for secret in ("ledger.sqlite", "youtube-token.json", "../ledger.sqlite", "%2e%2e/youtube-token.json", f"{gallery['real']}/audio.wav/../../ledger.sqlite"):
        answer = httpx.get(f"{base}/{secret}")
        assert answer.status_code == 404 and b"SECRET" not in answer.content, secret
    listing = httpx.get(f"{base}/").text  # a directory listing, as python -m http.server gives
    assert "ledger" not in listing and "token" not in listing
    # every file in the gallery is a page or the same bytes as a work-folder file a page shows
    for path in site.rglob("*"):
        if path.is_file() and path.suffix != ".html":
            original = out / path.relative_to(site)
            assert original.is_file() and path.read_bytes() == original.read_bytes(), path
            assert path.suffix in {".ogg", ".wav", ".flac", ".mp4", ".jpg", ".png", ".mid", ".json", ".pdf", ".musicxml"}, path
    assert not list(out.glob("index.html")) and not list(out.glob("*/review.html"))  # nothing left where pages used to be


@pytest.mark.browser
@pytest.mark.server
def test_a_hostile_title_stays_text(gallery, seen):
    for path in [gallery["index"], song_page_path(gallery["out"], gallery["failed"])]:
        html = path.read_text(encoding="utf-8")
        assert "<script" not in html.lower() and "<b>" not in html
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; Tom &amp; Jerry&#39;s" in html
    failed = seen[gallery["failed"]]
    assert failed["h1"] == HOSTILE_TITLE and failed["title"].startswith(HOSTILE_TITLE)
    assert failed["artist"] == HOSTILE_ARTIST
    assert [c["title"] for c in seen["index"]["cards"]][0] == HOSTILE_TITLE


@pytest.mark.browser
@pytest.mark.server
def test_the_index_shows_newest_first_with_each_songs_state(gallery, seen):
    cards = seen["index"]["cards"]
    assert [c["id"] for c in cards] == [f"song-{s}" for s in (gallery["failed"], gallery["published"], gallery["real"])]
    failed, published, real = (c["status"] for c in cards)
    assert failed == f"failed at download: {DOWNLOAD_ERROR}"
    assert published == "on YouTube" and f"https://youtu.be/{VIDEO_ID}" in seen["index"]["links"]
    assert real == "waiting in the queue"
    assert f"https://youtu.be/{VIDEO_ID}" in seen[gallery["published"]]["links"]
    assert {f"{gallery['base']}/{s}/review.html" for s in gallery["songs"]} <= set(seen["index"]["links"])


@pytest.mark.browser
@pytest.mark.server
def test_local_sources_stay_private_and_web_sources_are_linked(gallery, seen):
    clip = gallery["clip"]
    for path in gallery["out"].rglob("*.html"):
        html = path.read_text(encoding="utf-8")
        assert str(clip) not in html and str(clip.parent) not in html, path
    assert "https://example.com/published%20song.ogg" in seen[gallery["published"]]["links"]
    assert not [link for link in seen[gallery["real"]]["links"] if link.startswith("file:")]


@pytest.mark.browser
@pytest.mark.server
def test_the_index_screenshot_shows_the_gallery(gallery, tmp_path):
    png = screenshot(f"{gallery['base']}/index.html", tmp_path / "gallery-index.png")
    print(f"screenshot: {png}")
    assert png.stat().st_size > 10_000
    with Image.open(png) as image:
        assert image.size == (1400, 1100)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 100  # a blank or single-colour page has a handful


@pytest.mark.server
def test_rewriting_is_stable_and_top_candidates_is_honoured(gallery):
    out, real = gallery["out"], gallery["real"]
    page = song_page_path(out, real)
    before = page.read_bytes()
    try:
        write_song_page(out, Ledger(ledger_path(out)), real, GallerySettings(top_candidates=1))
        rows = len(json.loads(SongFolder(out, real).ranking.read_text())["scores"])
        assert len(Sources(page.read_text(encoding="utf-8")).found["audio"]) == 3 + rows  # the Listen section's, then a row's each
    finally:
        write_song_page(out, Ledger(ledger_path(out)), real)
    assert page.read_bytes() == before
    assert write_gallery(out).read_bytes() == gallery["index"].read_bytes()
    assert not list(out.rglob(".*.tmp-*"))


@pytest.mark.browser
def test_the_browser_helper_reports_a_broken_page(tmp_path):
    """The check the gallery passes must fail a page with a missing picture, a missing recording
    and a script error; a clean page with a real picture has none."""
    Image.new("RGB", (64, 36), "teal").save(tmp_path / "real.png")
    (tmp_path / "clean.html").write_text('<!doctype html><link rel="icon" href="data:,"><img src="real.png"><p>fine</p>')
    (tmp_path / "broken.html").write_text(
        '<!doctype html><link rel="icon" href="data:,"><img src="missing.png">'
        '<audio controls preload="none" src="gone.flac"></audio><script>undefinedFunction();</script>')
    with http_server(tmp_path) as base, open_page(f"{base}/clean.html") as page:
        assert page.errors == []
        errors = page.goto(f"{base}/broken.html")
        assert any("404" in e and e.endswith("/missing.png") for e in errors), errors
        assert any("ReferenceError: undefinedFunction is not defined" in e for e in errors), errors
        (player,) = page.evaluate(LOAD_AUDIO)
        assert player["src"].endswith("/gone.flac") and player["error"] == 4  # MEDIA_ERR_SRC_NOT_SUPPORTED
        page.settle()
        assert any("404" in e and e.endswith("/gone.flac") for e in page.errors), page.errors
        assert Sources(dump_dom(f"{base}/broken.html")).found["img"] == [{"src": "missing.png"}]
