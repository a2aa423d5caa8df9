"""The real google-api-python-client against a fake YouTube on 127.0.0.1: a resumable upload lands whole."""

from __future__ import annotations

import os

from google.oauth2.credentials import Credentials
from googleapiclient.http import MediaFileUpload

from covermill.tasks.publish.client import discovery_document, youtube_client

from fake_youtube import FakeYouTube

CHUNK = 256 * 1024  # the API's chunk granularity


def test_the_shipped_discovery_document_is_pointed_at_the_given_root():
    assert discovery_document()["rootUrl"] == "https://youtube.googleapis.com/"
    assert discovery_document("http://127.0.0.1:9")["rootUrl"] == "http://127.0.0.1:9/"


def test_a_resumable_upload_arrives_whole_in_chunks(tmp_path):
    video = tmp_path / "video.mp4"
    video.write_bytes(os.urandom(3 * CHUNK + 12345))
    with FakeYouTube() as fake:
        youtube = youtube_client(Credentials(token="test-token"), fake.url)
        body = {"snippet": {"title": "Sakura (Piano Cover)", "categoryId": "10"}, "status": {"privacyStatus": "private"}}
        request = youtube.videos().insert(part="snippet,status", body=body,
                                          media_body=MediaFileUpload(str(video), chunksize=CHUNK, resumable=True))
        response = None
        progress = []
        while response is None:
            status, response = request.next_chunk()
            if status is not None:
                progress.append(status.resumable_progress)
        assert request.resumable_uri.startswith(f"{fake.url}upload/session/")  # kept to resume after a crash
    assert list(fake.videos) == [response["id"]]  # exactly one completed video
    assert fake.videos[response["id"]]["data"] == video.read_bytes()
    assert fake.videos[response["id"]]["metadata"]["snippet"]["title"] == "Sakura (Piano Cover)"
    assert progress == [CHUNK, 2 * CHUNK, 3 * CHUNK]
    assert [method for method, _ in fake.requests] == ["POST", "PUT", "PUT", "PUT", "PUT"]
