"""YouTube authorization (`covermill auth`): the OAuth installed-app flow that leaves a token behind.

The flow redirects to a loopback address (Google retired the out-of-band flow). Without a browser
on this machine, the headless mode prints the URL; the user allows access in a browser elsewhere,
which then fails to load the loopback page, and pastes that page's address back here. The token
it gets is stored by token_store.py (which also imports a token made elsewhere).
"""

from __future__ import annotations

import errno
import json
import time
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from covermill.tasks.core.errors import CovermillError
from covermill.tasks.publish.token_store import (
    SCOPES,
    TESTING_TOKEN_DAYS,
    AuthSettings,
    save_credentials,
    secrets_kept_out_of_logs,
    token_path,
)

if TYPE_CHECKING:
    from google.oauth2.credentials import Credentials

HEADLESS_PORT = 8080
CLIENT_HELP = "Google Cloud console > APIs & Services > Credentials > Create credentials > OAuth client ID > Desktop app"


def authorize(
    settings: AuthSettings,
    work_dir: Path,
    *,
    headless: bool = False,
    open_browser: bool = True,
    port: int = 0,
    ask: Callable[[str], str] = input,
    say: Callable[[str], None] = print,
) -> Path:
    """Run the consent flow and store the token in the work folder; returns the token's path.

    Loopback: a one-request server on 127.0.0.1:`port` (0: any free port, which a Desktop app
    client accepts) receives Google's redirect. Headless: the redirect goes to
    127.0.0.1:`port` (8080 when 0) on the machine with the browser, and the user pastes its address.
    """
    path = token_path(work_dir, settings)
    config = _client_config(settings.client_secrets)
    with secrets_kept_out_of_logs():
        try:
            if headless:
                credentials = _headless(config, port or HEADLESS_PORT, ask, say)
            else:
                credentials = _loopback(config, port, open_browser, say)
        except Exception as exc:
            failure = _flow_failure(exc, config, port)
            if failure is None:
                raise
            raise failure from exc
    if not credentials.refresh_token:  # prompt=consent makes Google send one every time
        raise CovermillError("Google granted access but sent no refresh token; run `covermill auth` again.")
    save_credentials(credentials, path, authorized_at=time.time())
    say(f"Saved the YouTube token to {path}.")
    if settings.testing_app:
        say(f"While the OAuth app is in Testing status Google ends this token after {TESTING_TOKEN_DAYS:g} days; "
            "run `covermill auth` again before then, or publish the app.")
    return path


def _loopback(config: dict[str, Any], port: int, open_browser: bool, say: Callable[[str], None]) -> Credentials:
    def announce(url: str) -> None:
        say("Allow covermill to manage your YouTube channel: open this URL in a browser on this machine "
            f"and sign in with the channel's Google account:\n  {url}")

    if open_browser:
        try:
            webbrowser.get()
        except webbrowser.Error:  # run_local_server would crash on a machine without a browser
            open_browser = False
    flow = _flow(config, announce)
    return flow.run_local_server(
        host="127.0.0.1",  # not "localhost": the redirect must not depend on how it resolves
        port=port,
        open_browser=open_browser,
        authorization_prompt_message=None,  # announce() shows the URL; the library would print() and log it
        success_message="covermill is authorized to use YouTube; you may close this window.",
        access_type="offline",
        prompt="consent",
    )


def _headless(config: dict[str, Any], port: int, ask: Callable[[str], str], say: Callable[[str], None]) -> Credentials:
    redirect_uri = f"http://127.0.0.1:{port}/"

    def announce(url: str) -> None:
        say("Open this URL in a browser on any machine, sign in with the YouTube channel's Google account "
            f"and allow access:\n  {url}\nGoogle then sends that browser to {redirect_uri}, which fails to load "
            "there; that is expected: copy the whole address from its address bar and paste it below.")

    flow = _flow(config, announce)
    flow.redirect_uri = redirect_uri
    flow.authorization_url(access_type="offline", prompt="consent")  # the state is kept in the flow
    pasted = ask("Address of the page that failed to load: ").strip()
    query = parse_qs(urlsplit(pasted).query)
    if "error" in query:
        raise CovermillError(f"Google did not grant access ({query['error'][0]}); "
                             "run `covermill auth` again and allow access on the consent screen.")
    if "code" not in query:
        raise CovermillError("the pasted address has no authorization code; run `covermill auth --headless` again "
                             "and paste the whole address the browser shows after you allow access.")
    # oauthlib refuses an authorization response on plain http; a loopback redirect never crossed a
    # network, so, like google-auth-oauthlib's run_local_server, only the scheme is rewritten for that
    # check (it replaces every "http" in the string; the scope in the query holds some too).
    if pasted.lower().startswith("http://"):
        pasted = "https://" + pasted[len("http://"):]
    flow.fetch_token(authorization_response=pasted)
    return flow.credentials


def _flow(config: dict[str, Any], announce: Callable[[str], None]) -> Any:
    """An InstalledAppFlow that hands its authorization URL to `announce` when it makes one.

    run_local_server makes the URL inside, and otherwise only print()s and logs it.
    """
    from google_auth_oauthlib.flow import InstalledAppFlow

    class AnnouncingFlow(InstalledAppFlow):
        def authorization_url(self, **kwargs: Any) -> tuple[str, str]:
            url, state = super().authorization_url(**kwargs)
            announce(url)
            return url, state

    return AnnouncingFlow.from_client_config(config, scopes=list(SCOPES))


def _client_config(path: Path) -> dict[str, Any]:
    path = Path(path).expanduser()
    where = f"download a Desktop app client's JSON from {CLIENT_HELP}, and set upload.auth.client_secrets to it"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CovermillError(f"no OAuth client file at {path}; {where}.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not JSON"
        raise CovermillError(f"cannot read the OAuth client file {path} ({reason}); {where}.") from None
    installed = config.get("installed") if isinstance(config, dict) else None
    needed = ("client_id", "client_secret", "auth_uri", "token_uri")
    if not isinstance(installed, dict) or not all(installed.get(key) for key in needed):
        # A "web" client would need its redirect URIs registered; a Desktop app accepts any loopback port.
        raise CovermillError(f"{path} is not the JSON of a Desktop app OAuth client; {where}.")
    return {"installed": installed}


def _flow_failure(exc: Exception, config: dict[str, Any], port: int) -> CovermillError | None:
    """One sentence for what can go wrong between the consent screen and the token (no secrets in
    it), or None for anything else (a bug should keep its traceback)."""
    from oauthlib.oauth2.rfc6749 import errors
    from requests import RequestException

    again = "run `covermill auth` again"
    if isinstance(exc, errors.AccessDeniedError):
        return CovermillError(f"Google did not grant access (access_denied); {again} and allow access on the consent screen.")
    if isinstance(exc, errors.MismatchingStateError):
        return CovermillError(f"the redirect belongs to another authorization attempt (its state differs); {again} and use its newest URL.")
    if isinstance(exc, errors.MissingCodeError):
        return CovermillError(f"the redirect carried no authorization code; {again} and allow access on the consent screen.")
    if isinstance(exc, errors.InvalidGrantError):
        return CovermillError(f"Google refused the authorization code (expired or already used); {again}.")
    if isinstance(exc, errors.OAuth2Error):
        return CovermillError(f"the authorization failed ({exc.error}); {again}.")
    if isinstance(exc, RequestException):
        token_uri = config["installed"]["token_uri"]
        return CovermillError(f"could not reach Google's token endpoint {token_uri} ({type(exc).__name__}); "
                              f"check the network and {again}.")
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return CovermillError(f"port {port} on 127.0.0.1 is in use; {again} with another port, or 0 for any free one.")
    if type(exc) is Warning and hasattr(exc, "old_scope"):  # oauthlib raises a bare Warning when scopes were unticked
        missing = ", ".join(sorted(set(exc.old_scope) - set(exc.new_scope or ()))) or "some"
        return CovermillError(f"Google granted only part of the access covermill needs (not {missing}); "
                              f"{again} and tick every box on the consent screen.")
    return None
