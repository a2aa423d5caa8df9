"""The upload stage against a fake YouTube on 127.0.0.1, through the real google-api-python-client.

Every test ends with the same two checks: the bytes the server holds equal the video file, and the
server saw exactly one completed video per song, whatever broke on the way.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from google.oauth2.credentials import Credentials

from covermill.tasks.core.errors import CovermillError, DailyLimitReached, SongBeingPublished
from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import Ledger
from covermill.tasks.publish.channel import Channel
from covermill.tasks.publish.client import youtube_client
from covermill.tasks.publish.request import song_marker
from covermill.tasks.publish.upload import Publisher, UploadSettings

from fake_youtube import FakeYouTube
from helpers import publishable_song

CHUNK_KIB = 256


@pytest.fixture
def fake():
    with FakeYouTube() as server:
        server.refresh_tokens.add("refresh-test")
        yield server


def credentials(fake: FakeYouTube) -> Credentials:
    return Credentials(token="test-token", refresh_token="refresh-test", token_uri=fake.token_uri,
                       client_id="client-id", client_secret="client-secret")


def settings(fake: FakeYouTube, **changes) -> UploadSettings:
    return UploadSettings(api_root=fake.url, chunk_kib=CHUNK_KIB, backoff_s=0.01, backoff_max_s=0.05, **changes)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def publisher(fake: FakeYouTube, out: Path, sleeps: Sleeps | None = None, **changes) -> Publisher:
    return Publisher(youtube_client(credentials(fake), fake.url), Ledger(ledger_path(out)), out,
                     settings(fake, **changes), sleep=sleeps if sleeps is not None else Sleeps())


def assert_published_once(fake: FakeYouTube, out: Path, song_id: str) -> str:
    video = SongFolder(out, song_id).video
    found = [vid for vid, v in fake.videos.items() if song_marker(song_id) in v["metadata"]["snippet"]["description"]]
    assert len(found) == 1, f"{len(found)} completed videos for {song_id}"
    assert fake.videos[found[0]]["data"] == video.read_bytes()
    assert Ledger(ledger_path(out)).upload(song_id).video_id == found[0]
    return found[0]


@pytest.fixture
def song(tmp_path, real_video) -> tuple[Path, str]:
    video, thumbnail = real_video
    return tmp_path, publishable_song(tmp_path, "song_a", video, thumbnail, combined=0.1)


def chunks_of(out: Path, song_id: str) -> int:
    return math.ceil(SongFolder(out, song_id).video.stat().st_size / (CHUNK_KIB * 1024))


def test_a_song_is_published_with_thumbnail_playlist_and_the_body_youtube_needs(fake, song):
    out, song_id = song
    assert chunks_of(out, song_id) >= 3  # the real video spans several chunks
    upload = publisher(fake, out).publish(song_id)
    video_id = assert_published_once(fake, out, song_id)
    body = fake.videos[video_id]["metadata"]
    assert body["status"] == {"privacyStatus": "private", "selfDeclaredMadeForKids": False, "containsSyntheticMedia": True}
    assert body["snippet"]["categoryId"] == "10"
    assert "basic-pitch" in body["snippet"]["description"] and "https://example.com/song_a.ogg" in body["snippet"]["description"]
    assert body["snippet"]["description"].endswith(song_marker(song_id))
    assert "Planet Blupi" in body["snippet"]["tags"]
    assert fake.thumbnails[video_id] == SongFolder(out, song_id).thumbnail.read_bytes()
    (playlist,) = fake.playlists.values()
    assert playlist["snippet"]["title"] == "Piano covers"
    assert [i["snippet"]["resourceId"]["videoId"] for i in fake.playlist_items] == [video_id]
    assert upload.thumbnail_set and upload.playlist_item and upload.session_uri
    ledger = Ledger(ledger_path(out))
    assert ledger.is_done(song_id, "upload")
    # the playlist is asked before and after the insert: an entry the client's resend doubled is removed
    assert ledger.calls_on(upload.day) == {"videos.insert": 1, "thumbnails.set": 1, "playlists.list": 1,
                                           "playlists.insert": 1, "playlistItems.list": 2, "playlistItems.insert": 1}
    # publishing again sends nothing: the ledger holds the video id and each finished step
    before = len(fake.requests)
    assert publisher(fake, out).publish(song_id).video_id == video_id
    assert len(fake.requests) == before


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_mid_upload_are_retried_with_backoff(fake, song, status):
    out, song_id = song
    fake.inject("PUT", "/upload/session/", status=status, skip=1, times=3)
    sleeps = Sleeps()
    publisher(fake, out, sleeps).publish(song_id)
    assert_published_once(fake, out, song_id)
    assert len(sleeps) == 3
    assert all(0 <= s <= 0.01 * 2 ** n for n, s in enumerate(sleeps))  # full jitter under a doubling cap
    # each retry first asks the session how far it got (two of those asks also met a 5xx), then the
    # rest is sent: every chunk once, plus the three failed requests, plus the one ask that worked
    assert sum(1 for m, p in fake.requests if m == "PUT") == chunks_of(out, song_id) + 3 + 1


def test_a_connection_cut_mid_chunk_resumes_from_the_bytes_the_server_kept(fake, song):
    out, song_id = song
    # the server keeps 100 000 bytes of the second chunk, then the connection breaks (three times)
    fake.inject("PUT", "/upload/session/", drop_after=100_000, skip=1, times=3)
    sleeps = Sleeps()
    publisher(fake, out, sleeps).publish(song_id)
    assert_published_once(fake, out, song_id)
    assert sleeps  # the cut reached covermill's retry, not only httplib2's own reconnect


def test_an_expired_token_is_refreshed_mid_upload(fake, song):
    out, song_id = song
    fake.inject("PUT", "/upload/session/", status=401, skip=2)
    sleeps = Sleeps()
    publisher(fake, out, sleeps).publish(song_id)
    assert_published_once(fake, out, song_id)
    assert [r["grant_type"] for r in fake.token_requests] == ["refresh_token"]
    # the transport repeated the chunk with the new token at once: a streamed chunk would have been
    # repeated empty, stalled until the socket timed out, and needed a retry
    assert sleeps == []


def test_a_revoked_token_is_one_sentence_to_run_auth_again(fake, song):
    out, song_id = song
    fake.revoke()
    with pytest.raises(Exception) as caught:
        publisher(fake, out).publish(song_id)
    assert "covermill auth" in str(caught.value)
    assert not fake.videos


@pytest.mark.parametrize("reason", ["quotaExceeded", "uploadLimitExceeded"])
def test_a_daily_limit_stops_without_a_video(fake, song, reason):
    out, song_id = song
    fake.inject("POST", "/upload/youtube/v3/videos", status=403, reason=reason)
    with pytest.raises(DailyLimitReached) as caught:
        publisher(fake, out).publish(song_id)
    assert caught.value.reason == reason
    assert not fake.videos
    assert Ledger(ledger_path(out)).upload(song_id).video_id is None
    # the next day's run publishes it, once
    publisher(fake, out).publish(song_id)
    assert_published_once(fake, out, song_id)


def test_a_thumbnail_refused_by_an_unverified_channel_does_not_block_the_video(fake, song):
    out, song_id = song
    fake.inject("POST", "/upload/youtube/v3/thumbnails/set", status=403, reason="forbidden")
    upload = publisher(fake, out).publish(song_id)
    assert_published_once(fake, out, song_id)
    assert not upload.thumbnail_set and upload.playlist_item


KILLED_RUN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from google.oauth2.credentials import Credentials
    from covermill.tasks.core.layout import ledger_path
    from covermill.tasks.core.ledger import Ledger
    from covermill.tasks.publish.upload import Publisher, UploadSettings
    from covermill.tasks.publish.client import youtube_client

    url, out, chunk_kib = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    youtube = youtube_client(Credentials(token="test-token"), url)
    Publisher(youtube, Ledger(ledger_path(out)), out, UploadSettings(api_root=url, chunk_kib=chunk_kib)).publish(sys.argv[4])
    print("the server's answer arrived: the test meant to kill this process first", flush=True)
""")


def kill_while_answering(fake: FakeYouTube, out: Path, song_id: str, chunk_kib: int, chunk: int) -> None:
    """Run the upload in a real process; the server takes chunk number `chunk` (1-based) and holds
    its answer while the process is killed, so the ledger never hears what that chunk did."""
    fault = fake.inject("PUT", "/upload/session/", hang_after_complete=True, skip=chunk - 1)
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, fake.url, str(out), str(chunk_kib), song_id],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    held = min(chunk * chunk_kib * 1024, SongFolder(out, song_id).video.stat().st_size)
    while process.poll() is None and time.monotonic() < deadline:
        if fault.times == 0 and any(len(s.data) == held for s in fake.sessions.values()):
            break
        time.sleep(0.05)
    process.kill()
    output = process.communicate()[0]
    assert any(len(s.data) == held for s in fake.sessions.values()), output
    assert Ledger(ledger_path(out)).upload(song_id).video_id is None  # killed before any ledger write of it


def kill_after_the_last_chunk(fake: FakeYouTube, out: Path, song_id: str, chunk_kib: int) -> None:
    kill_while_answering(fake, out, song_id, chunk_kib, math.ceil(SongFolder(out, song_id).video.stat().st_size / (chunk_kib * 1024)))
    assert len(fake.videos) == 1


def test_killed_mid_upload_the_next_run_sends_only_the_rest(fake, song):
    out, song_id = song
    kill_while_answering(fake, out, song_id, CHUNK_KIB, chunk=2)
    assert not fake.videos
    before = sum(1 for m, _ in fake.requests if m == "PUT")
    publisher(fake, out).publish(song_id)
    assert_published_once(fake, out, song_id)
    assert len(fake.uploads()) == 1  # the same session, resumed
    # one status query, then only the chunks after the two the server already held
    assert sum(1 for m, _ in fake.requests if m == "PUT") - before == 1 + chunks_of(out, song_id) - 2


def test_killed_after_the_last_chunk_the_session_status_recovers_the_video(fake, song):
    out, song_id = song
    kill_after_the_last_chunk(fake, out, song_id, CHUNK_KIB)
    assert Ledger(ledger_path(out)).upload(song_id).session_uri  # kept when the session opened
    publisher(fake, out).publish(song_id)
    assert_published_once(fake, out, song_id)
    assert len(fake.uploads()) == 1  # no second session was opened
    assert not any("/youtube/v3/channels" in p for _, p in fake.requests)  # the session answered; no search


def test_killed_before_the_session_uri_was_kept_the_channel_search_recovers_the_video(fake, song):
    out, song_id = song
    # one chunk holds the whole file: the session opens and finishes in the same next_chunk call.
    # The session URI is kept before the chunk is read now; a run killed between the session's
    # opening and that read (or an older covermill's run) left none: only the channel knows.
    whole = math.ceil(SongFolder(out, song_id).video.stat().st_size / (CHUNK_KIB * 1024)) * CHUNK_KIB
    kill_after_the_last_chunk(fake, out, song_id, whole)
    ledger = Ledger(ledger_path(out))
    assert ledger.upload(song_id).session_uri is not None
    ledger.record_upload(song_id, ledger.upload(song_id).model_copy(update={"session_uri": None}))
    publisher(fake, out).publish(song_id)
    assert_published_once(fake, out, song_id)
    assert len(fake.uploads()) == 1
    assert any("/youtube/v3/playlistItems" in p and "playlistId=UU" in p for m, p in fake.requests if m == "GET")


def test_an_expired_session_without_a_video_starts_a_new_upload(fake, song):
    out, song_id = song
    fake.inject("PUT", "/upload/session/", drop_after=0, skip=1, times=100)  # the run dies mid-upload
    with pytest.raises(CovermillError, match="gave up after 1 retries in a row") as caught:
        publisher(fake, out, retries=1).publish(song_id)
    assert "upload_id" not in str(caught.value) and "\n" not in str(caught.value)  # the session stays private
    assert Ledger(ledger_path(out)).upload(song_id).session_uri
    fake.faults.clear()
    fake.sessions.clear()  # a week later: YouTube forgot the session
    publisher(fake, out).publish(song_id)
    assert_published_once(fake, out, song_id)
    assert len(fake.uploads()) == 2


def test_only_a_description_ending_with_the_marker_counts_as_that_songs_upload(fake):
    def seed(description: str) -> str:
        video_id = f"vid{len(fake.videos)}"
        fake.videos[video_id] = {"metadata": {"snippet": {"title": "t", "description": description}}, "data": b"", "resource": {}}
        return video_id

    channel = Channel(youtube_client(credentials(fake), fake.url), count=lambda method: None)
    marker = song_marker("abc123")
    # another song whose artist tag (or title) reads covermill:abc123: its own marker is its last line
    seed(f"Piano cover of Song by {marker}\n{marker}x\n\n{song_marker('zzz999')}")
    assert channel.find_upload(marker) is None
    own = seed(f"Piano cover of Song by Artist\n\n{marker}\n")
    assert channel.find_upload(marker) == own


def test_two_publishers_at_once_publish_a_song_once(fake, song):
    out, song_id = song
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def publish() -> None:
        one = publisher(fake, out)  # its own ledger connection, as another process would have
        start.wait()
        try:
            outcomes.append(one.publish(song_id).video_id)
        except SongBeingPublished as busy:
            outcomes.append(str(busy))

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    video_id = assert_published_once(fake, out, song_id)
    assert len(fake.uploads()) == 1 and len(fake.playlist_items) == 1
    assert sorted(outcomes, key=lambda o: o != video_id)[0] == video_id
    assert all(o == video_id or "is being published by another covermill process" in o for o in outcomes)


def test_the_session_is_recorded_before_its_first_byte_is_sent(fake, song, monkeypatch):
    out, song_id = song
    seen: list[tuple[str | None, int]] = []  # (session recorded, PUTs the server had seen by then)
    record = Ledger.record_upload

    def watch(self, song_id, upload):
        seen.append((upload.session_uri, sum(1 for m, _ in fake.requests if m == "PUT")))
        record(self, song_id, upload)

    monkeypatch.setattr(Ledger, "record_upload", watch)
    publisher(fake, out).publish(song_id)
    first = next(puts for uri, puts in seen if uri)
    assert first == 0  # a process killed during the first chunk can resume its session
    assert_published_once(fake, out, song_id)


def test_a_playlist_entry_whose_answer_was_lost_is_not_added_twice(fake, song):
    out, song_id = song
    fake.release.set()  # the server adds the entry, then cuts the connection instead of answering
    fake.inject("POST", "/youtube/v3/playlistItems", hang_after_complete=True)
    upload = publisher(fake, out).publish(song_id)
    video_id = assert_published_once(fake, out, song_id)
    assert [i["snippet"]["resourceId"]["videoId"] for i in fake.playlist_items] == [video_id]
    assert upload.playlist_item == fake.playlist_items[0]["id"]
