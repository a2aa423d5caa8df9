"""download: local files probed and copied, URLs fetched by yt-dlp from a real loopback server."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from covermill.tasks.core.audio import probe, read_mono
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.cover.download import DownloadSettings, download_song, expand_sources

from helpers import http_server, loopback_downloads


def test_local_file_is_copied_into_a_folder_named_by_content(clips, tmp_path):
    song = download_song(str(clips["song_a"]), tmp_path, DownloadSettings())
    folder = SongFolder(tmp_path, song.id)
    assert song.original == folder.original(".ogg")
    assert song.original.read_bytes() == clips["song_a"].read_bytes()
    assert song.title == "song_a"  # no tags: the file name
    assert 24.5 < song.duration < 25.5
    samples = read_mono(song.audio)
    assert abs(len(samples) / 44100 - song.duration) < 0.1
    assert samples.std() > 0.01  # real music, not silence

    # A copy with another name is the same song (same content, same folder).
    renamed = tmp_path / "renamed.ogg"
    shutil.copyfile(clips["song_a"], renamed)
    assert download_song(str(renamed), tmp_path, DownloadSettings()).id == song.id


def test_title_and_artist_come_from_tags_and_never_name_the_folder(clips, tmp_path):
    tagged = tmp_path / "tagged.ogg"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(clips["song_b"]), "-c", "copy",
                    "-metadata", "title=../../Évasion / 逃げる", "-metadata", "artist=Blupi", str(tagged)], check=True)
    song = download_song(str(tagged), tmp_path / "out", DownloadSettings())
    assert (song.title, song.artist) == ("../../Évasion / 逃げる", "Blupi")
    assert song.original.parent.name == song.id and song.id.isalnum()
    assert song.original.parent.parent == tmp_path / "out"


def test_url_is_downloaded_with_ytdlp_from_a_loopback_server(clips, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(clips["song_b"], served / "song.ogg")
    with http_server(served) as base:
        url = f"{base}/song.ogg"
        song = download_song(url, tmp_path / "out", loopback_downloads())
        assert song.source == url and song.source_id == f"url:{url}"
        assert song.original.read_bytes() == clips["song_b"].read_bytes()
        assert probe(song.audio).duration == pytest.approx(song.duration, abs=0.1)
        # Downloading again finds the folder and keeps the file as it was.
        before = song.original.stat().st_mtime_ns
        assert download_song(url, tmp_path / "out", loopback_downloads()).original.stat().st_mtime_ns == before
    assert not list((tmp_path / "out").rglob("*.part"))


def test_a_private_address_is_refused_unless_allowed(clips, tmp_path):
    """The tests' server is on 127.0.0.1: refused by default, by its address or by a name for it, before any request."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copyfile(clips["song_b"], served / "song.ogg")
    with http_server(served) as base:
        port = base.rsplit(":", 1)[1]
        for url, place in ((f"{base}/song.ogg", "127.0.0.1"), (f"http://localhost:{port}/song.ogg", "localhost (127.0.0.1)")):
            with pytest.raises(CovermillError) as caught:
                download_song(url, tmp_path / "out", DownloadSettings())
            assert str(caught.value) == (f"{url}: not downloaded, it points to {place}, a loopback address (this machine); "
                                         "add 127.0.0.1 to download.allow_private in config.yaml if you mean it.")
        assert not (tmp_path / "out").exists()
        song = download_song(f"http://localhost:{port}/song.ogg", tmp_path / "out", DownloadSettings(allow_private=["127.0.0.0/8"]))
        assert song.original.read_bytes() == clips["song_b"].read_bytes()


def test_only_http_and_https_addresses_are_fetched(clips, tmp_path):
    """Any other scheme is refused as an address: file:// does not reach the file it names."""
    for source, scheme in ((f"file://{clips['song_a']}", "file"), ("ftp://127.0.0.1/song.ogg", "ftp"),
                           ("data:audio/ogg;base64,T2dnUw==", "data")):
        with pytest.raises(CovermillError) as caught:
            download_song(source, tmp_path / "out", DownloadSettings(allow_private=["0.0.0.0/0"]))
        assert str(caught.value) == (f"{source}: not downloaded, it points to a non-web address ({scheme}:), and only http and "
                                     "https are fetched; give an http(s) URL, or a local file by its path.")
    assert not (tmp_path / "out").exists()
    named = tmp_path / "data:song.ogg"  # a file whose name merely looks like an address is a file
    shutil.copyfile(clips["song_a"], named)
    assert download_song(str(named), tmp_path / "out", DownloadSettings()).original.exists()


def test_unreachable_and_missing_urls_get_one_sentence(tmp_path):
    with http_server(tmp_path) as base:
        with pytest.raises(CovermillError, match=r"404.*check the address"):
            download_song(f"{base}/nothing-here.ogg", tmp_path / "out", loopback_downloads())
    with pytest.raises(CovermillError, match=r"could not download .*Connection refused"):
        download_song(base + "/song.ogg", tmp_path / "out", loopback_downloads(retries=0))


def test_duration_limits(clips, tmp_path):
    with pytest.raises(CovermillError, match=r"over the 0.3 min limit; raise download.max_duration_s"):
        download_song(str(clips["song_a"]), tmp_path, DownloadSettings(max_duration_s=20))
    with pytest.raises(CovermillError, match=r"under the 30 s minimum"):
        download_song(str(clips["song_a"]), tmp_path, DownloadSettings(min_duration_s=30))
    assert not list(tmp_path.glob("*/original.*"))  # refused before anything was copied


def test_a_file_cut_short_is_refused_by_what_decodes(clips, tmp_path):
    """An MP3 copied only in part still announces its whole length (its header); the minimum holds
    for the audio that decodes, and the refused copy is not kept."""
    whole = tmp_path / "whole.mp3"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-t", "10", "-i", str(clips["song_a"]), "-c:a", "libmp3lame", str(whole)],
                   check=True)
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with pytest.raises(CovermillError, match=r"^.*cut\.mp3: only 3\.\d s of its 10\.0 s could be decoded, under the 5 s minimum; "
                                             r"the file seems cut short, give the complete file\.$"):
        download_song(str(cut), tmp_path / "out", DownloadSettings())
    assert not list((tmp_path / "out").iterdir())


def test_bad_local_inputs(tmp_path):
    with pytest.raises(CovermillError, match="no such file"):
        download_song(str(tmp_path / "missing.mp3"), tmp_path, DownloadSettings())
    text = tmp_path / "notes.mp3"
    text.write_text("these are not the droids\n" * 20)
    with pytest.raises(CovermillError, match="cannot read this file as audio"):
        download_song(str(text), tmp_path, DownloadSettings())
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    with pytest.raises(CovermillError, match="empty.ogg"):
        download_song(str(empty), tmp_path, DownloadSettings())


def test_folders_expand_to_their_audio_files(clips, tmp_path):
    for name in ("b.ogg", "a.ogg"):
        shutil.copyfile(clips["song_a"], tmp_path / name)
    (tmp_path / "cover.txt").write_text("not audio")
    assert expand_sources([str(tmp_path), "https://example.com/x"]) == [
        str(tmp_path / "a.ogg"), str(tmp_path / "b.ogg"), "https://example.com/x"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(CovermillError, match="has no audio files"):
        expand_sources([str(tmp_path / "empty")])


class StreamingHandler(http.server.BaseHTTPRequestHandler):
    """Serves one file without a Content-Length (close-delimited, as a live stream or a proxy does),
    counting the bytes it managed to send."""

    path_served: Path
    sent: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.end_headers()
        sent = 0
        try:
            with open(self.path_served, "rb") as source:
                while block := source.read(65536):
                    self.wfile.write(block)
                    sent += len(block)
        except (BrokenPipeError, ConnectionResetError):
            pass
        type(self).sent.append(sent)

    def log_message(self, *args: object) -> None:
        pass


def test_a_download_over_the_size_cap_stops_before_or_as_the_bytes_arrive(tmp_path):
    big = tmp_path / "site" / "big.wav"
    big.parent.mkdir()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=f=440:d=600", "-ar", "44100", str(big)], check=True)
    assert big.stat().st_size > 50_000_000
    capped = loopback_downloads(max_megabytes=1.0)
    # announced (Content-Length): refused before the body is read
    with http_server(big.parent) as base:
        with pytest.raises(CovermillError, match="larger than download.max_megabytes") as caught:
            download_song(f"{base}/big.wav", tmp_path / "out", capped)
    assert "\n" not in str(caught.value)
    assert not list((tmp_path / "out").rglob("*.wav*"))  # nothing fetched is left
    # unannounced: stopped once the bytes pass the cap, long before the end
    StreamingHandler.path_served, StreamingHandler.sent = big, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StreamingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(CovermillError, match="larger than download.max_megabytes"):
            download_song(f"http://127.0.0.1:{server.server_address[1]}/stream.wav", tmp_path / "out", capped)
    finally:
        server.shutdown()
        server.server_close()
    assert not list((tmp_path / "out").rglob("*.wav*")) and not list((tmp_path / "out").rglob(".download"))
    # what the server got into the socket: the 1 MB read, plus what the kernel's loopback buffers took (a few MB)
    assert StreamingHandler.sent and max(StreamingHandler.sent) < big.stat().st_size / 4


def test_a_song_refused_for_its_length_once_fetched_is_not_kept(clips, tmp_path):
    """A URL whose length is unknown until it is fetched: refused after the download, and not left on disk."""
    with http_server(clips["song_a"].parent) as base:
        with pytest.raises(CovermillError, match="over the .* limit"):
            download_song(f"{base}/{clips['song_a'].name}", tmp_path / "out", loopback_downloads(max_duration_s=10.0))
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
