"""`covermill auth` against a fake Google token endpoint: the real google-auth-oauthlib flow, both
ways a browser can hand back the consent, and a token that is stored 0600, refreshed, and never shown."""

from __future__ import annotations

import base64
import json
import logging
import os
import queue
import re
import stat
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests_oauthlib.oauth2_session
from google.oauth2.credentials import Credentials

from covermill.tasks.core.errors import CovermillError
from covermill.tasks.publish.authorize import authorize
from covermill.tasks.publish.token_store import (
    AUTHORIZED_AT,
    SCOPES,
    AuthSettings,
    import_token,
    load_credentials,
    persist_if_refreshed,
    reauthorize_message,
    save_credentials,
    token_path,
)

from fake_youtube import FakeYouTube

CLIENT_ID = "1234-fake.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-fake-client-secret"
DAY = 86400.0


@pytest.fixture
def fake(monkeypatch, capsys, caplog):
    """A fake token endpoint; afterwards, no token or client secret reached stdout, stderr or any log."""
    caplog.set_level(logging.DEBUG)
    with FakeYouTube() as fake:
        # Google's token endpoint is https and requests-oauthlib refuses any other before sending;
        # the fake's plain-http one is let through, and only it (the pasted redirect keeps oauthlib's check).
        secure = requests_oauthlib.oauth2_session.is_secure_transport
        monkeypatch.setattr(requests_oauthlib.oauth2_session, "is_secure_transport",
                            lambda uri: uri == fake.token_uri or secure(uri))
        yield fake
    out, err = capsys.readouterr()
    logged = [caplog.handler.format(r) for phase in ("setup", "call") for r in caplog.get_records(phase)]
    shown = "\n".join([out, err, *logged])
    # What the fake issued (access-00001, refresh-00002; revoke() forgets them, so by pattern),
    # what the tests stored, and what the client sent (the secret, also inside Basic auth).
    assert not re.findall(r"(?:access|refresh)-\d{5}", shown)
    sent = {t.get(key) for t in fake.token_requests for key in ("code", "code_verifier", "refresh_token")}
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert not [s for s in {CLIENT_SECRET, basic, "refresh-stored", *sent} - {None} if s in shown]


@pytest.fixture
def settings(tmp_path, fake) -> AuthSettings:
    secrets = tmp_path / "client_secret.json"
    secrets.write_text(json.dumps({"installed": {
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "project_id": "covermill-test",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": fake.token_uri,
        "redirect_uris": ["http://localhost"]}}))
    return AuthSettings(client_secrets=secrets)


def one_sentence(message: str) -> bool:
    return message.endswith(".") and "\n" not in message and ". " not in message.replace(".json", "")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def auth_url_in(text: str) -> dict[str, str]:
    url = re.search(r"https://accounts\.google\.com/\S+", text).group(0)
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def assert_fresh_token(path: Path, fake: FakeYouTube) -> dict:
    assert mode(path) == 0o600
    stored = json.loads(path.read_text())
    assert stored["refresh_token"] in fake.refresh_tokens and stored["token"] in fake.access_tokens
    assert abs(stored[AUTHORIZED_AT] - time.time()) < 60
    grants = [t for t in fake.token_requests if t["grant_type"] == "authorization_code"]
    assert [t["code"] for t in grants] == ["fake-code"]
    assert grants[0]["code_verifier"]  # PKCE
    return grants[0]


def stored_token(path: Path, fake: FakeYouTube, *, authorized_days_ago: float, expired: bool) -> Credentials:
    """A token as `covermill auth` leaves it, with a refresh token the fake honours."""
    fake.refresh_tokens.add("refresh-stored")
    expiry = datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=-2 if expired else 1)
    credentials = Credentials(token="test-token", refresh_token="refresh-stored", token_uri=fake.token_uri,
                              client_id=CLIENT_ID, client_secret=CLIENT_SECRET, scopes=list(SCOPES), expiry=expiry)
    save_credentials(credentials, path, authorized_at=time.time() - authorized_days_ago * DAY)
    return credentials


def run_loopback(settings: AuthSettings, work: Path, answer: dict[str, str]) -> tuple[dict, dict]:
    """authorize() in a thread; the test is the browser Google redirects (with `answer` and the state).

    Returns the printed URL's query and {"path": ...} or {"error": ...}.
    """
    said: queue.Queue[str] = queue.Queue()
    result: dict = {}

    def run() -> None:
        try:
            result["path"] = authorize(settings, work, open_browser=False, port=0, say=said.put)
        except BaseException as exc:  # handed to the test's thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    query = auth_url_in(said.get(timeout=10))
    back = f"{query['redirect_uri']}?{urlencode({'state': query['state'], **answer})}"
    with urllib.request.urlopen(back, timeout=10) as page:
        assert b"close this window" in page.read()
    thread.join(timeout=10)
    assert not thread.is_alive()
    return query, result


def test_the_loopback_flow_receives_the_redirect_and_stores_the_token_0600(tmp_path, settings, fake):
    query, result = run_loopback(settings, tmp_path / "work", {"code": "fake-code", "scope": " ".join(SCOPES)})
    assert "error" not in result, result.get("error")
    assert query["access_type"] == "offline" and query["prompt"] == "consent" and query["client_id"] == CLIENT_ID
    assert set(query["scope"].split()) == set(SCOPES)
    redirect = urlsplit(query["redirect_uri"])
    assert redirect.scheme == "http" and redirect.hostname == "127.0.0.1" and redirect.port not in (None, 0, 8080)

    path = result["path"]
    assert path == token_path(tmp_path / "work", settings)
    grant = assert_fresh_token(path, fake)
    assert grant["redirect_uri"] == query["redirect_uri"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_the_loopback_flow_reports_a_refusal_in_one_sentence(tmp_path, settings, fake):
    _, result = run_loopback(settings, tmp_path, {"error": "access_denied"})
    error = result.get("error")
    assert isinstance(error, CovermillError) and "did not grant access" in str(error) and one_sentence(str(error))
    assert fake.token_requests == [] and not token_path(tmp_path, settings).exists()


def test_headless_exchanges_the_pasted_redirect_address(tmp_path, settings, fake):
    said: list[str] = []

    def paste(prompt: str) -> str:
        query = auth_url_in(said[-1])
        assert query["redirect_uri"] == "http://127.0.0.1:8080/"
        return f"http://127.0.0.1:8080/?state={query['state']}&code=fake-code&scope={'+'.join(SCOPES)}\n"

    path = authorize(settings, tmp_path, headless=True, ask=paste, say=said.append)
    assert_fresh_token(path, fake)
    assert any("covermill auth" in line and "7 days" in line for line in said)  # the Testing limit, told up front


@pytest.mark.parametrize("pasted, words", [
    ("http://127.0.0.1:8080/?error=access_denied&state={state}", "did not grant access"),
    ("http://127.0.0.1:8080/?state={state}", "no authorization code"),
    ("http://127.0.0.1:8080/?state=someone-elses&code=fake-code", "another authorization attempt"),
])
def test_headless_refusals_are_one_sentence(tmp_path, settings, fake, pasted, words):
    said: list[str] = []

    def paste(prompt: str) -> str:
        return pasted.format(state=auth_url_in(said[-1])["state"])

    with pytest.raises(CovermillError) as caught:
        authorize(settings, tmp_path, headless=True, ask=paste, say=said.append)
    assert words in str(caught.value) and "covermill auth" in str(caught.value) and one_sentence(str(caught.value))
    assert not token_path(tmp_path, settings).exists()
    assert [t for t in fake.token_requests if t["grant_type"] == "authorization_code"] == []


def test_a_missing_or_wrong_client_file_names_its_path_and_where_to_get_one(tmp_path, fake):
    missing = tmp_path / "nowhere.json"
    web = tmp_path / "web.json"
    web.write_text(json.dumps({"web": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}}))
    for path in (missing, web):
        with pytest.raises(CovermillError) as caught:
            authorize(AuthSettings(client_secrets=path), tmp_path, headless=True, ask=lambda _: "", say=print)
        message = str(caught.value)
        assert str(path) in message and "Desktop app" in message and "upload.auth.client_secrets" in message
        assert one_sentence(message) and CLIENT_SECRET not in message


def test_token_file_must_be_a_plain_name():
    for bad in ("../token.json", "sub/token.json", "", ".."):
        with pytest.raises(ValueError):
            AuthSettings(token_file=bad)


def test_a_token_made_elsewhere_is_imported_and_one_without_refresh_token_refused(tmp_path, settings, fake):
    elsewhere = tmp_path / "downloads" / "token.json"
    elsewhere.parent.mkdir()
    made = stored_token(elsewhere, fake, authorized_days_ago=2, expired=False)
    elsewhere.chmod(0o644)
    made_at = json.loads(elsewhere.read_text())[AUTHORIZED_AT]

    path = import_token(elsewhere, settings, tmp_path / "work")
    assert mode(path) == 0o600
    stored = json.loads(path.read_text())
    assert stored["refresh_token"] == made.refresh_token and stored[AUTHORIZED_AT] == made_at

    google_made = tmp_path / "quickstart.json"  # another tool's authorized-user JSON: no consent time
    google_made.write_text(made.to_json())
    os.utime(google_made, (time.time() - 3 * DAY,) * 2)
    stored = json.loads(import_token(google_made, settings, tmp_path / "work").read_text())
    assert abs(stored[AUTHORIZED_AT] - (time.time() - 3 * DAY)) < 60

    bare = tmp_path / "access-only.json"
    bare.write_text(json.dumps({"token": "test-token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}))
    with pytest.raises(CovermillError) as caught:
        import_token(bare, settings, tmp_path / "other")
    assert "refresh_token" in str(caught.value) and one_sentence(str(caught.value))
    assert not (tmp_path / "other").exists()


def test_an_expired_access_token_is_refreshed_and_saved_back(tmp_path, settings, fake):
    path = token_path(tmp_path, settings)
    stored_token(path, fake, authorized_days_ago=1, expired=True)
    authorized_at = json.loads(path.read_text())[AUTHORIZED_AT]

    credentials = load_credentials(settings, tmp_path)
    assert credentials.valid and credentials.token in fake.access_tokens and credentials.token != "test-token"
    assert [t["grant_type"] for t in fake.token_requests] == ["refresh_token"]
    stored = json.loads(path.read_text())
    assert stored["token"] == credentials.token and stored["refresh_token"] == "refresh-stored"
    assert stored[AUTHORIZED_AT] == authorized_at and mode(path) == 0o600

    assert load_credentials(settings, tmp_path).token == credentials.token  # still valid: no second refresh
    assert len(fake.token_requests) == 1


def test_a_token_refreshed_during_an_upload_is_persisted(tmp_path, settings, fake):
    path = token_path(tmp_path, settings)
    stored_token(path, fake, authorized_days_ago=1, expired=False)
    credentials = load_credentials(settings, tmp_path)
    assert not persist_if_refreshed(credentials, path)

    from google.auth.transport.requests import Request
    credentials.refresh(Request())  # what AuthorizedHttp does on a 401
    assert persist_if_refreshed(credentials, path)
    stored = json.loads(path.read_text())
    assert stored["token"] == credentials.token and AUTHORIZED_AT in stored and mode(path) == 0o600


def test_a_revoked_token_says_run_covermill_auth_again(tmp_path, settings, fake):
    path = token_path(tmp_path, settings)
    stored_token(path, fake, authorized_days_ago=1, expired=True)
    fake.revoke()
    with pytest.raises(CovermillError) as caught:
        load_credentials(settings, tmp_path)
    assert str(caught.value) == reauthorize_message(path)
    assert "run `covermill auth` again" in str(caught.value) and one_sentence(str(caught.value))
    assert "refresh-stored" not in str(caught.value) and "test-token" not in str(caught.value)


def test_a_missing_token_is_one_sentence(tmp_path, settings):
    with pytest.raises(CovermillError) as caught:
        load_credentials(settings, tmp_path)
    message = str(caught.value)
    assert str(token_path(tmp_path, settings)) in message and "covermill auth" in message and one_sentence(message)


def test_a_token_readable_by_others_is_tightened_with_a_warning(tmp_path, settings, fake, caplog):
    path = token_path(tmp_path, settings)
    stored_token(path, fake, authorized_days_ago=1, expired=False)
    path.chmod(0o644)
    load_credentials(settings, tmp_path)
    assert mode(path) == 0o600
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "0600" in r.getMessage()]
    caplog.clear()
    load_credentials(settings, tmp_path)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("days_ago, testing_app, warned", [(6.5, True, True), (1, True, False), (6.5, False, False)])
def test_the_seven_day_testing_limit_is_announced(tmp_path, settings, fake, caplog, days_ago, testing_app, warned):
    settings = settings.model_copy(update={"testing_app": testing_app})
    stored_token(token_path(tmp_path, settings), fake, authorized_days_ago=days_ago, expired=False)
    logger = logging.getLogger("covermill.upload.test")
    load_credentials(settings, tmp_path, logger=logger)
    warnings = [r.getMessage() for r in caplog.records if r.name == logger.name and r.levelno == logging.WARNING]
    if warned:
        assert len(warnings) == 1 and "covermill auth" in warnings[0] and "about 0.5 days" in warnings[0]
    else:
        assert warnings == []


def test_past_seven_days_google_decides(tmp_path, settings, fake, caplog):
    path = token_path(tmp_path, settings)
    stored_token(path, fake, authorized_days_ago=8, expired=False)
    credentials = load_credentials(settings, tmp_path)  # refreshed at once, though the access token was fresh
    assert credentials.token != "test-token" and [t["grant_type"] for t in fake.token_requests] == ["refresh_token"]
    assert "testing_app" in caplog.text

    fake.revoke()
    with pytest.raises(CovermillError, match="run `covermill auth` again"):
        load_credentials(settings, tmp_path)


def test_an_imported_token_naming_another_token_endpoint_is_refused(tmp_path, settings, fake):
    """The refresh token and the client secret go to the token endpoint at every refresh: an imported
    file may name Google's (or this machine's, a local proxy), not any other."""
    made = stored_token(tmp_path / "made.json", fake, authorized_days_ago=1, expired=False)
    info = json.loads(made.to_json())
    for endpoint in ("https://collector.example.com/token", "http://10.0.0.5/token"):
        hostile = tmp_path / "hostile.json"
        hostile.write_text(json.dumps({**info, "token_uri": endpoint}))
        with pytest.raises(CovermillError) as caught:
            import_token(hostile, settings, tmp_path / "work")
        assert endpoint in str(caught.value) and one_sentence(str(caught.value))
    assert not (tmp_path / "work").exists()
    google = tmp_path / "google.json"
    google.write_text(json.dumps({**info, "token_uri": "https://oauth2.googleapis.com/token"}))
    assert json.loads(import_token(google, settings, tmp_path / "work").read_text())["token_uri"] == "https://oauth2.googleapis.com/token"


def test_the_api_root_must_be_https_unless_it_is_this_machine():
    from covermill.tasks.publish.upload import UploadSettings

    with pytest.raises(ValueError, match="unencrypted"):
        UploadSettings(api_root="http://youtube-proxy.example.com/")
    assert UploadSettings(api_root="https://youtube-proxy.example.com/").api_root.startswith("https")
    assert UploadSettings(api_root="http://127.0.0.1:8080/").api_root.startswith("http://127.0.0.1")
