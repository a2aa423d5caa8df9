"""Whether a source is a web address: the one test download, playlists, metadata and the gallery share;
and whether an endpoint may carry secrets.

Only http(s) counts; anything else a user gives is a local path (and is refused as one if it is not a file).
"""

import ipaddress
import re
from urllib.parse import urlsplit


def is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


# An address of another scheme: "file://...", "ftp://...", "data:..." (a plain "name:x.ogg" stays a path).
OTHER_SCHEME = re.compile(r"([a-z][a-z0-9+.-]*)://|(data):", re.IGNORECASE)


def other_scheme(source: str) -> str | None:
    """The scheme of an address that is not http(s) (file, ftp, data, ...), or None."""
    found = OTHER_SCHEME.match(source)
    return None if found is None or is_url(source) else (found.group(1) or found.group(2)).lower()


def is_loopback(url: str) -> bool:
    """Whether the URL's host is this machine (localhost, 127.0.0.0/8, ::1)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def carries_secrets_safely(url: str) -> bool:
    """https anywhere, or plain http to this machine only (a local proxy, the tests' fake YouTube):
    tokens and client secrets are never sent in the clear over a network."""
    scheme = urlsplit(url).scheme.lower()
    return scheme == "https" or (scheme == "http" and is_loopback(url))


# A URL's query: an upload session's upload_id (which resumes, so publishes, the upload), a signed
# download's signature, a key. Text meant for the ledger, the gallery or a log keeps the address only.
URL_QUERY = re.compile(r"(https?://[^\s'\"?#<>]+)[?#][^\s'\"<>]*", re.IGNORECASE)


def without_queries(text: str) -> str:
    """`text` with every http(s) URL's query and fragment replaced by "?..."."""
    return URL_QUERY.sub(r"\1?...", text)
