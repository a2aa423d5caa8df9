"""The publishing queue through the CLI and the publish flow, against a fake YouTube on 127.0.0.1:
best first, the channel's daily cap, daily limits that stop the day, dry runs that write the exact
request, and `covermill queue` / `covermill auth` as a user meets them."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from google.oauth2.credentials import Credentials
from typer.testing import CliRunner

from covermill.flows.cli import app
from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import Ledger
from covermill.tasks.publish.request import song_marker
from covermill.tasks.publish.token_store import AuthSettings, save_credentials, token_path

from fake_youtube import FakeYouTube
from helpers import publishable_song


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def fake():
    with FakeYouTube() as server:
        server.refresh_tokens.add("refresh-test")
        yield server


@pytest.fixture
def work(tmp_path, real_video, fake):
    """A work folder with three finished songs (scores 0.3, 0.1, 0.2), a token, and a config
    pointing the upload at the fake: (out, config path, song ids best first)."""
    out = tmp_path / "out"
    video, thumbnail = real_video
    ids = {score: publishable_song(out, f"song {score}", video, thumbnail, combined=score) for score in (0.3, 0.1, 0.2)}
    credentials = Credentials(token="test-token", refresh_token="refresh-test", token_uri=fake.token_uri,
                              client_id="client-id", client_secret="client-secret")
    save_credentials(credentials, token_path(out, AuthSettings()), authorized_at=time.time())
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"upload": {
        "api_root": fake.url, "chunk_kib": 256, "backoff_s": 0.01, "backoff_max_s": 0.05,
        "quota": {"uploads_per_day": 2},
    }}))
    return out, config, [ids[0.1], ids[0.2], ids[0.3]]


def published(fake: FakeYouTube, out: Path) -> list[str]:
    """Song ids of the completed videos in upload order, each checked to hold its file's exact bytes."""
    order = []
    for video in fake.videos.values():
        song_id = video["metadata"]["snippet"]["description"].rsplit("covermill:", 1)[1]
        assert video["data"] == SongFolder(out, song_id).video.read_bytes()
        order.append(song_id)
    assert len(order) == len(set(order)), "a song was uploaded twice"
    return order


@pytest.mark.server
def test_the_best_covers_go_first_and_the_channel_cap_holds_the_rest(prefect_server, fake, work):
    out, config, best_first = work
    result = invoke("publish", "--out", str(out), "--config", str(config), "--publish")
    assert result.exit_code == 0, result.output
    assert published(fake, out) == best_first[:2]
    assert result.stdout.count("published:") == 2
    # the third waits: the queue says so, and a second run today sends nothing
    listing = invoke("queue", "--out", str(out), "--config", str(config))
    assert listing.exit_code == 0
    assert "allows 0 more" in listing.stdout and "1 waiting" in listing.stdout
    assert "0.300" in listing.stdout and best_first[2] in listing.stdout and "later" in listing.stdout
    before = len(fake.requests)
    assert invoke("publish", "--out", str(out), "--config", str(config), "--publish").exit_code == 0
    assert len(fake.requests) == before
    assert published(fake, out) == best_first[:2]


@pytest.mark.server
def test_the_dry_run_writes_the_exact_request_that_is_later_sent(prefect_server, fake, work):
    out, config, best_first = work
    data = yaml.safe_load(config.read_text())
    data["upload"]["schedule"] = True
    config.write_text(yaml.safe_dump(data))
    dry = invoke("publish", "--out", str(out), "--config", str(config))  # upload.enabled is false
    assert dry.exit_code == 0, dry.output
    assert "dry run: 2 of 3" in dry.stdout
    assert not fake.requests
    requests = {song_id: json.loads(SongFolder(out, song_id).upload_request.read_text()) for song_id in best_first}
    assert [requests[s]["today"] for s in best_first] == [True, True, False]
    bodies = {s: r["request"]["videos.insert"]["body"] for s, r in requests.items()}
    times = [datetime.fromisoformat(bodies[s]["status"]["publishAt"].replace("Z", "+00:00")) for s in best_first[:2]]
    assert times[0] < times[1] and all(9 <= t.hour < 21 for t in times)  # spread over the UTC window
    assert "publishAt" not in bodies[best_first[2]]["status"]
    assert all(b["status"]["privacyStatus"] == "private" for b in bodies.values())

    sent = invoke("publish", "--out", str(out), "--config", str(config), "--publish")
    assert sent.exit_code == 0, sent.output
    assert published(fake, out) == best_first[:2]
    for song_id in best_first[:2]:
        (video,) = [v for v in fake.videos.values() if song_marker(song_id) in v["metadata"]["snippet"]["description"]]
        expected = bodies[song_id]
        # the real run spreads publishAt from its own "now": compare those as times
        assert abs(_moment(video["metadata"]) - _moment(expected)) < 120
        assert _without_publish_at(video["metadata"]) == _without_publish_at(expected)


def _moment(body: dict) -> float:
    return datetime.fromisoformat(body["status"]["publishAt"].replace("Z", "+00:00")).timestamp()


def _without_publish_at(body: dict) -> dict:
    return {**body, "status": {k: v for k, v in body["status"].items() if k != "publishAt"}}


@pytest.mark.server
def test_an_upload_limit_stops_the_day_without_failing_the_run(prefect_server, fake, work):
    out, config, best_first = work
    fake.inject("POST", "/upload/youtube/v3/videos", status=403, reason="uploadLimitExceeded", skip=1)
    result = invoke("publish", "--out", str(out), "--config", str(config), "--publish")
    assert result.exit_code == 0, result.output
    assert "uploadLimitExceeded" in result.stdout and "wait for tomorrow" in result.stdout
    assert published(fake, out) == best_first[:1]
    ledger = Ledger(ledger_path(out))
    assert ledger.day_stopped(ledger.upload(best_first[0]).day) == "uploadLimitExceeded"
    listing = invoke("queue", "--out", str(out), "--config", str(config))
    assert "stopped uploads for today (uploadLimitExceeded)" in listing.stdout and "2 waiting" in listing.stdout
    before = len(fake.requests)
    assert invoke("publish", "--out", str(out), "--config", str(config), "--publish").exit_code == 0
    assert len(fake.requests) == before  # nothing more is tried today


@pytest.mark.server
def test_a_quota_exceeded_on_the_first_song_publishes_nothing_and_says_why(prefect_server, fake, work):
    out, config, _ = work
    fake.inject("POST", "/upload/youtube/v3/videos", status=403, reason="quotaExceeded")
    result = invoke("publish", "--out", str(out), "--config", str(config), "--publish")
    assert result.exit_code == 0, result.output
    assert "quotaExceeded" in result.stdout
    assert not fake.videos


@pytest.mark.server
def test_a_failing_upload_is_tried_upload_retries_times_not_three_times_that(prefect_server, fake, work):
    """The upload's own retries are the policy; Prefect's task retries on top would multiply them."""
    out, config, best_first = work
    config.write_text(config.read_text().replace("chunk_kib: 256", "chunk_kib: 256\n  retries: 2"))
    fake.inject("PUT", "/upload/session/", status=503, times=1000)  # every chunk answered 503
    result = invoke("publish", "--out", str(out), "--config", str(config), "--publish")
    assert result.exit_code == 1
    # per song: the first chunk and its 2 retries (each retry asks the session first, also answered 503)
    puts = [p for m, p in fake.requests if m == "PUT" and "/upload/session/" in p]
    assert len(puts) == 2 * (1 + 2)  # two songs tried today, each given up after its own retries
    assert "gave up after 2 retries in a row" in result.stderr and "upload_id" not in result.stderr
    assert published(fake, out) == []


@pytest.mark.server
def test_publishing_without_a_token_is_one_sentence(prefect_server, fake, work):
    out, config, _ = work
    token_path(out, AuthSettings()).unlink()
    result = invoke("publish", "--out", str(out), "--config", str(config), "--publish")
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "covermill auth" in line and "Traceback" not in result.output
    assert not fake.requests


def test_queue_outside_a_work_folder_is_one_sentence(tmp_path):
    result = invoke("queue", "--out", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "no ledger here" in result.stderr


def test_auth_imports_a_token_made_elsewhere_and_refuses_a_missing_client_file(tmp_path, fake):
    made_elsewhere = tmp_path / "token.json"
    credentials = Credentials(token="t", refresh_token="refresh-test", token_uri=fake.token_uri,
                              client_id="client-id", client_secret="client-secret",
                              scopes=["https://www.googleapis.com/auth/youtube.upload", "https://www.googleapis.com/auth/youtube"])
    made_elsewhere.write_text(credentials.to_json())
    result = invoke("auth", "--out", str(tmp_path / "out"), "--token-file", str(made_elsewhere))
    assert result.exit_code == 0, result.output
    stored = tmp_path / "out" / "youtube-token.json"
    assert stored.stat().st_mode & 0o777 == 0o600
    assert "refresh-test" not in result.output

    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"upload": {"auth": {"client_secrets": str(tmp_path / "missing.json")}}}))
    refused = invoke("auth", "--out", str(tmp_path / "out"), "--config", str(config), "--no-browser")
    assert refused.exit_code == 2
    (line,) = [line for line in refused.stderr.splitlines() if line.strip()]
    assert "missing.json" in line and "client_secrets" in line


@pytest.mark.server
def test_the_token_appears_in_no_output(prefect_server, fake, work):
    """Publish with a refresh, a failed chunk and a give-up, then grep every output for the secrets:
    the work folder (ledger and gallery included), the command's output, and the Prefect server's
    database (logs, artifacts, parameters, states, results) and result storage."""
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_LOCAL_STORAGE_PATH

    out, config, _ = work
    refresh, client_secret, access = "rt-SECRET-5b8e", "cs-SECRET-77d1", "at-SECRET-0c4f"
    fake.refresh_tokens.add(refresh)
    credentials = Credentials(token=access, refresh_token=refresh, token_uri=fake.token_uri,
                              client_id="client-id", client_secret=client_secret)
    save_credentials(credentials, token_path(out, AuthSettings()), authorized_at=time.time())
    fake.expire_access_tokens()  # the first call answers 401: the token is refreshed, a new access token issued
    fake.inject("PUT", "/upload/session/", status=500, times=1)  # one failed chunk, retried
    config.write_text(config.read_text().replace("chunk_kib: 256", "chunk_kib: 256\n  retries: 1"))
    results = [invoke("publish", "--out", str(out), "--config", str(config), "--publish")]
    fake.inject("PUT", "/upload/session/", status=503, times=1000)  # the last song gives up: an error's text
    fake.refresh_tokens.add(refresh)
    results.append(invoke("publish", "--out", str(out), "--config", str(config), "--publish"))
    results.append(invoke("queue", "--out", str(out), "--config", str(config)))
    assert results[0].exit_code == 0 and published(fake, out), results[0].output
    issued = set(fake.access_tokens)
    assert issued and access not in issued
    secrets = [s.encode() for s in (refresh, client_secret, access, *issued)]

    texts = {f"output of {r}": (r.stdout + r.stderr).encode() for r in results}
    token_file = token_path(out, AuthSettings())
    for path in out.rglob("*"):
        if path.is_file() and path != token_file:
            texts[str(path)] = path.read_bytes()
    database = Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split("///", 1)[1])
    for path in [*database.parent.glob(database.name + "*"), *Path(PREFECT_LOCAL_STORAGE_PATH.value()).glob("**/*")]:
        if path.is_file():
            texts[str(path)] = path.read_bytes()
    prefect_texts = b"".join(text for name, text in texts.items() if Path(name).parent in (database.parent,))
    video_id = next(iter(fake.videos))
    assert video_id.encode() in prefect_texts  # what the runs logged is in what was searched
    assert str(out / "ledger.sqlite") in texts
    assert token_file.read_bytes().count(refresh.encode()) == 1  # the secret is there to find
    leaks = [(name, s.decode()) for name, text in texts.items() for s in secrets if s in text]
    assert leaks == []
