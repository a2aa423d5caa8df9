"""The YouTube Data API client, built from the discovery document google-api-python-client ships.

Building from the shipped document needs no network (`build()` would fetch it), and its `rootUrl`
is the one place to point the whole client, resumable uploads included, somewhere else: the tests'
fake YouTube on 127.0.0.1. (`client_options={"api_endpoint": ...}` changes only the host of the
upload URL and keeps https, so a plain-HTTP server never sees the upload.)
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def discovery_document(root_url: str | None = None) -> dict[str, Any]:
    """YouTube v3's discovery document as shipped, with `rootUrl` replaced when given."""
    text = (resources.files("googleapiclient") / "discovery_cache" / "documents" / "youtube.v3.json").read_text(encoding="utf-8")
    document = json.loads(text)
    if root_url is not None:
        document["rootUrl"] = root_url.rstrip("/") + "/"
    return document


def youtube_client(credentials: Any, root_url: str | None = None) -> Any:
    """A `youtube` v3 service object using `credentials` (google.oauth2 credentials)."""
    from googleapiclient.discovery import build_from_document

    return build_from_document(discovery_document(root_url), credentials=credentials)
