"""yt-dlp held to download.allow_private (tasks/cover/ytdlp_guard.py), through download_song, against
real servers: 127.0.0.1 is allowed, 127.0.0.2 (loopback too, on Linux) stands for a private host that
is not, and each server lists what it was asked for, so a refusal is seen to come before the request."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address
from pathlib import Path

import pytest
from yt_dlp.postprocessor.ffmpeg import FFmpegPostProcessor

from covermill.tasks.core.errors import CovermillError
from covermill.tasks.cover import hosts
from covermill.tasks.cover.download import DownloadSettings, download_song
from covermill.tasks.cover.ytdlp_guard import GuardedYoutubeDL

from helpers import loopback_downloads

ALLOW_TWO = DownloadSettings(allow_private=["127.0.0.1", "127.0.0.2"])
HOW_TO_ALLOW_127_0_0_2 = "a loopback address (this machine); add 127.0.0.2 to download.allow_private in config.yaml if you mean it."


@contextmanager
def server(host: str, folder: Path, redirects: dict[str, str] | None = None) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on `host` serving `folder` and answering 302 -> `redirects[path]` for those
    paths; yields its base URL and the paths it was asked for."""
    asked: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            asked.append(self.path)
            if self.path in (redirects or {}):
                self.send_response(302)
                self.send_header("Location", redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://{host}:{httpd.server_address[1]}", asked
    finally:
        httpd.shutdown()
        httpd.server_close()


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.fixture()
def site(tmp_path, short_clips) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    shutil.copyfile(short_clips["song_a"], folder / "song.ogg")
    return folder


def test_a_redirect_into_a_private_address_is_refused_before_it_is_followed(site, tmp_path, short_clips):
    with server("127.0.0.2", site) as (inside, inside_asked), \
            server("127.0.0.1", site, {"/moved.ogg": f"{inside}/song.ogg"}) as (base, asked):
        with pytest.raises(CovermillError) as caught:
            download_song(f"{base}/moved.ogg", tmp_path / "out", loopback_downloads())
        assert str(caught.value) == f"{base}/moved.ogg: not downloaded, it redirects to 127.0.0.2, {HOW_TO_ALLOW_127_0_0_2}"
        assert inside_asked == [] and set(asked) == {"/moved.ogg"}
        assert files_under(tmp_path / "out") == []
        # allowed, the same redirect is followed
        song = download_song(f"{base}/moved.ogg", tmp_path / "out", ALLOW_TWO)
        assert song.original.read_bytes() == short_clips["song_a"].read_bytes() and "/song.ogg" in inside_asked


@pytest.mark.parametrize(("location", "clause"), [
    ("http://169.254.169.254/latest/meta-data/", "it redirects to 169.254.169.254, a link-local address (where a cloud's metadata service "
                                                 "answers); add 169.254.169.254 to download.allow_private in config.yaml if you mean it"),
    ("http://10.0.0.1/song.ogg", "it redirects to 10.0.0.1, a private-network address; add 10.0.0.1 to download.allow_private"),
    ("file:///etc/passwd", "it redirects to a non-web address (file:), and only http and https are fetched"),
    ("ftp://127.0.0.1/song.ogg", "it redirects to a non-web address (ftp:), and only http and https are fetched"),
])
def test_redirects_off_the_public_web_are_refused(site, tmp_path, location, clause):
    with server("127.0.0.1", site, {"/moved.ogg": location}) as (base, _):
        with pytest.raises(CovermillError) as caught:
            download_song(f"{base}/moved.ogg", tmp_path / "out", loopback_downloads())
    assert str(caught.value).startswith(f"{base}/moved.ogg: not downloaded, {clause}")
    assert "\n" not in str(caught.value) and files_under(tmp_path / "out") == []


def test_media_a_page_links_to_is_checked_like_the_page(site, tmp_path):
    """The generic extractor finds an <audio> on an allowed page; the media itself is on a host that is not."""
    with server("127.0.0.2", site) as (inside, inside_asked):
        (site / "page.html").write_text(f'<html><head><title>A song</title></head><body><audio src="{inside}/song.ogg"></audio></body></html>')
        with server("127.0.0.1", site) as (base, _):
            with pytest.raises(CovermillError) as caught:
                download_song(f"{base}/page.html", tmp_path / "out", loopback_downloads())
    assert str(caught.value) == f"{base}/page.html: not downloaded, it leads to 127.0.0.2, {HOW_TO_ALLOW_127_0_0_2}"
    assert inside_asked == [] and files_under(tmp_path / "out") == []


def test_a_name_that_resolves_elsewhere_by_the_time_of_connecting_is_caught_at_the_connection(site, tmp_path, monkeypatch):
    """DNS rebinding: the URL's check hears a public address, the connection would reach 127.0.0.1.
    The resolver is the edge faked here; the connection is real and checked as it is made."""
    monkeypatch.setattr(hosts, "addresses_of", lambda host, port=None: [ip_address("93.184.215.14")])
    with server("127.0.0.1", site) as (base, asked):
        with pytest.raises(CovermillError) as caught:
            download_song(f"{base}/song.ogg", tmp_path / "out", DownloadSettings(retries=0))
    assert str(caught.value) == (f"{base}/song.ogg: not downloaded, it leads to 127.0.0.1, a loopback address (this machine); "
                                 "add 127.0.0.1 to download.allow_private in config.yaml if you mean it.")
    assert asked == []  # not a byte sent


@pytest.fixture(scope="module")
def hls(tmp_path_factory, short_clips) -> Path:
    """A 10 s song as a real HLS stream: vod.m3u8 and its three MPEG-TS segments."""
    folder = tmp_path_factory.mktemp("hls")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(short_clips["song_b"]), "-c:a", "aac", "-f", "hls",
                    "-hls_time", "4", "-hls_list_size", "0", str(folder / "vod.m3u8")], check=True)
    return folder


def variant(hls: Path, name: str, edit) -> str:
    """A copy of the stream's playlist changed by `edit` (text -> text); returns its file name."""
    (hls / name).write_text(edit((hls / "vod.m3u8").read_text()))
    return name


def test_an_hls_stream_is_fetched_by_ytdlp_itself_and_decoded(hls, tmp_path):
    with server("127.0.0.1", hls) as (base, asked):
        song = download_song(f"{base}/vod.m3u8", tmp_path / "out", loopback_downloads())
    assert song.duration == pytest.approx(10.0, abs=0.5)
    assert {"/vod0.ts", "/vod1.ts", "/vod2.ts"} <= set(asked)


def test_an_hls_segment_elsewhere_is_refused(hls, tmp_path):
    with server("127.0.0.2", hls) as (inside, inside_asked), server("127.0.0.1", hls) as (base, _):
        name = variant(hls, "mixed.m3u8", lambda text: text.replace("\nvod1.ts", f"\n{inside}/vod1.ts"))
        with pytest.raises(CovermillError) as caught:
            download_song(f"{base}/{name}", tmp_path / "out", loopback_downloads())
    assert str(caught.value) == f"{base}/{name}: not downloaded, it leads to 127.0.0.2, {HOW_TO_ALLOW_127_0_0_2}"
    assert inside_asked == [] and files_under(tmp_path / "out") == []


def test_a_stream_only_ffmpeg_could_fetch_is_refused_before_any_segment(hls, tmp_path):
    """yt-dlp's HLS downloader hands SAMPLE-AES streams to FFmpeg, which would fetch outside the checks."""
    name = variant(hls, "sample-aes.m3u8", lambda text: text.replace("#EXTINF", '#EXT-X-KEY:METHOD=SAMPLE-AES,URI="key.bin"\n#EXTINF', 1))
    with server("127.0.0.1", hls) as (base, asked):
        with pytest.raises(CovermillError) as caught:
            download_song(f"{base}/{name}", tmp_path / "out", loopback_downloads())
    assert str(caught.value) == (f"{base}/{name}: not downloaded, its stream needs ffmpeg to fetch it, outside covermill's "
                                 "address checks; give the address of another recording.")
    assert set(asked) == {f"/{name}"}  # the playlist only: no key, no segment
    assert files_under(tmp_path / "out") == []
    with GuardedYoutubeDL({"quiet": True}, []) as ydl:  # were yt-dlp's words to change, there is no FFmpeg to hand it to
        assert not FFmpegPostProcessor(ydl).available


def test_a_live_stream_is_refused(hls, tmp_path):
    name = variant(hls, "live.m3u8", lambda text: text.replace("#EXT-X-ENDLIST\n", ""))  # no end: live
    with server("127.0.0.1", hls) as (base, asked):
        with pytest.raises(CovermillError) as caught:
            download_song(f"{base}/{name}", tmp_path / "out", loopback_downloads())
    assert str(caught.value) == f"{base}/{name}: this is a live stream, which has no end to cover; give the address of a recording."
    assert set(asked) == {f"/{name}"} and files_under(tmp_path / "out") == []
