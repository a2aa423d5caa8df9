"""The YouTube token: where it lives, how it is written, loaded, refreshed and imported.

The token (a refresh token, plus the OAuth client's id and secret) lives in the work folder with
mode 0600 from the moment it is written, is refreshed and saved back as needed, and is never
printed or logged: messages name its path only. Google ends the refresh tokens of an OAuth app in
"Testing" publishing status 7 days after consent, so the file also records when consent was
given, and loading warns as that day nears. Getting a token in the first place is authorize.py.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.leftovers import leftover_tag
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.urls import is_loopback

if TYPE_CHECKING:
    from google.oauth2.credentials import Credentials

# Upload needs youtube.upload; playlists need youtube (thumbnails accept either).
SCOPES = ("https://www.googleapis.com/auth/youtube.upload", "https://www.googleapis.com/auth/youtube")
# Google's token endpoint, as Google's own libraries and client_secret.json files name it (the old
# one still answers); an imported token naming another is refused (a loopback one is a local proxy).
GOOGLE_TOKEN_URIS = frozenset({"https://oauth2.googleapis.com/token", "https://accounts.google.com/o/oauth2/token",
                               "https://www.googleapis.com/oauth2/v4/token"})
TESTING_TOKEN_DAYS = 7.0  # Google's limit for a refresh token of an app in Testing status
AUTHORIZED_AT = "covermill_authorized_at"  # epoch seconds of the consent that granted the refresh token
_DAY = 86400.0

log = logging.getLogger("covermill.auth")


class AuthSettings(Settings):
    # The OAuth client JSON (type "installed", i.e. a Desktop app) from Google Cloud console,
    # relative to the folder covermill runs in.
    client_secrets: Path = Path("client_secret.json")
    token_file: str = "youtube-token.json"  # inside the work folder
    testing_app: bool = True  # the OAuth app is in Testing status: its refresh tokens die after 7 days
    warn_after_days: float = Field(6.0, ge=0, lt=TESTING_TOKEN_DAYS)

    @field_validator("token_file")
    @classmethod
    def _plain_file_name(cls, value: str) -> str:
        if value in ("", ".", "..") or "/" in value or "\\" in value:
            raise ValueError("must be a file name inside the work folder, without folders")
        return value


def token_path(work_dir: Path, settings: AuthSettings) -> Path:
    return Path(work_dir) / settings.token_file


def reauthorize_message(path: Path) -> str:
    """The sentence for a refresh token Google no longer accepts (also when it dies mid-upload)."""
    return f"the YouTube token in {path} has expired or been revoked; run `covermill auth` again."


def import_token(source: Path, settings: AuthSettings, work_dir: Path) -> Path:
    """Store a token made elsewhere (`covermill auth` on another machine, or any authorized-user JSON)."""
    source = Path(source).expanduser()
    info = _read_json(source, f"cannot read the token file {source}")
    if not isinstance(info, dict) or not info.get("refresh_token"):
        raise CovermillError(f"{source} is not a YouTube token file (it has no refresh_token); "
                             "make one with `covermill auth` on a machine with a browser and import that.")
    try:
        credentials = _credentials(info)
    except ValueError:
        raise CovermillError(f"{source} is not a complete YouTube token file (it needs client_id and client_secret); "
                             "make one with `covermill auth` on a machine with a browser and import that.") from None
    if credentials.token_uri not in GOOGLE_TOKEN_URIS and not is_loopback(credentials.token_uri):
        # the refresh token and the client secret go to this address at every refresh
        raise CovermillError(f"{source} names {credentials.token_uri!r} as its token endpoint, not Google's; "
                             "make the token with `covermill auth` and import that.")
    if credentials.scopes and not set(SCOPES) <= set(credentials.scopes):
        raise CovermillError(f"the token in {source} does not grant YouTube upload and playlist access; "
                             "make one with `covermill auth`, which asks for both.")
    # Without covermill's record of the consent, the file's time is the best bound: consent came
    # no later than the file was written, so the 7-day warning is late rather than false.
    authorized_at = info.get(AUTHORIZED_AT)
    if not isinstance(authorized_at, (int, float)):
        authorized_at = min(source.stat().st_mtime, time.time())
    return save_credentials(credentials, token_path(work_dir, settings), authorized_at=authorized_at)



# --- storing and loading -------------------------------------------------------------------------

def save_credentials(credentials: Credentials, path: Path, authorized_at: float | None = None) -> Path:
    """Write the token atomically, mode 0600 from creation; `authorized_at` None keeps the stored one."""
    path = Path(path)
    data = json.loads(credentials.to_json())
    if authorized_at is None:
        try:
            authorized_at = _read_json(path, "").get(AUTHORIZED_AT)
        except (CovermillError, AttributeError):  # no earlier file (or not a token): nothing to keep
            authorized_at = None
    if authorized_at is not None:
        data[AUTHORIZED_AT] = authorized_at
    _write_private(path, json.dumps(data, indent=2) + "\n")
    return path


def _write_private(path: Path, text: str) -> None:
    """atomic.write_text, but the temporary file is created 0600 (it holds the secrets before the rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{leftover_tag()}-{uuid.uuid4().hex[:8]}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # exactly 0600 whatever the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())  # a lost refresh token means a new consent
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_credentials(
    settings: AuthSettings,
    work_dir: Path,
    *,
    now: float | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> Credentials:
    """The stored credentials, refreshed (and saved back) when the access token is stale.

    A token past a Testing app's 7 days is refreshed at once: Google decides whether it still
    works, and it is better to know before an upload than an hour into one.
    """
    from google.auth.exceptions import RefreshError
    from google.auth.transport.requests import Request

    logger = logger or log
    now = time.time() if now is None else now
    path = token_path(work_dir, settings)
    if not path.is_file():
        raise CovermillError(f"no YouTube token at {path}; run `covermill auth` to authorize covermill for your channel.")
    _tighten(path, logger)
    info = _read_json(path, f"cannot read the YouTube token {path}")
    try:
        credentials = _credentials(info)
    except (ValueError, AttributeError, TypeError):
        raise CovermillError(f"{path} is not a usable YouTube token; run `covermill auth` again.") from None

    authorized_at = info.get(AUTHORIZED_AT)
    age_days = (now - authorized_at) / _DAY if isinstance(authorized_at, (int, float)) else None
    past_limit = settings.testing_app and age_days is not None and age_days >= TESTING_TOKEN_DAYS
    if settings.testing_app and age_days is not None and settings.warn_after_days <= age_days < TESTING_TOKEN_DAYS:
        logger.warning("the YouTube token in %s is %.1f days old and stops working in about %.1f days "
                       "(Google's 7-day limit for an OAuth app in Testing); run `covermill auth` to renew it.",
                       path, age_days, TESTING_TOKEN_DAYS - age_days)
    if past_limit or not credentials.valid:
        try:
            with secrets_kept_out_of_logs():
                credentials.refresh(Request())
        except RefreshError as exc:
            if exc.retryable:  # Google's side failed; the stage's retries deal with it
                raise
            raise CovermillError(reauthorize_message(path)) from exc
        save_credentials(credentials, path)
    if past_limit:
        logger.warning("the YouTube token in %s is %.1f days old yet still works, so the OAuth app is no longer "
                       "in Testing; set upload.auth.testing_app to false to stop this warning.", path, age_days)
    return credentials


def persist_if_refreshed(credentials: Credentials, path: Path) -> bool:
    """Save `credentials` when their access token differs from the stored one.

    The upload's authorized HTTP refreshes on a 401 by mutating the Credentials object; this keeps
    the file in step so the next run does not refresh again. Returns whether it wrote.
    """
    try:
        stored = _read_json(Path(path), "").get("token")
    except (CovermillError, AttributeError):
        stored = None
    if credentials.token is None or credentials.token == stored:
        return False
    save_credentials(credentials, path)
    return True


def _credentials(info: dict[str, Any]) -> Credentials:
    """from_authorized_user_info, but keeping the stored token_uri (it always puts Google's in)."""
    from google.oauth2.credentials import Credentials

    credentials = Credentials.from_authorized_user_info(info)
    token_uri = info.get("token_uri")
    if not isinstance(token_uri, str) or not token_uri or token_uri == credentials.token_uri:
        return credentials
    moved = credentials.with_token_uri(token_uri)
    moved.expiry = credentials.expiry  # with_token_uri's copy drops it, and no expiry reads as valid forever
    return moved


def _tighten(path: Path, logger: logging.Logger | logging.LoggerAdapter) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        path.chmod(0o600)
        logger.warning("the YouTube token %s was readable by others (mode %o); it is now 0600.", path, mode)


def _read_json(path: Path, failure: str) -> Any:
    """Parsed JSON; on failure a CovermillError starting with `failure` (the content never shown)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CovermillError(f"{failure}: it does not exist.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not JSON"
        raise CovermillError(f"{failure} ({reason}).") from None


# requests-oauthlib logs the token request (client secret, code, PKCE verifier) and the response
# (access and refresh tokens) at DEBUG, and google-auth-oauthlib logs the redirect's request line
# (the code) at INFO: a `--debug` run must show neither.
_CHATTY_LOGGERS = ("requests_oauthlib", "oauthlib", "google_auth_oauthlib")


@contextmanager
def secrets_kept_out_of_logs() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
