"""The `videos.insert` request for one song: the exact body sent to YouTube (and written in a dry run).

Title and description come from the metadata stage's templates; this adds what YouTube's status
needs (privacy, optional publishAt, not made for kids, synthetic media declared), tags, and a
marker line naming the song, so that a video whose upload answer was lost can be found again in
the channel's uploads instead of being uploaded twice.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from covermill.tasks.core.records import Publication, Song
from covermill.tasks.media.metadata import DESCRIPTION_MAX_BYTES, fit_description, without_controls

PART = "snippet,status"
MARKER_PREFIX = "covermill:"
TAGS_MAX_CHARS = 500  # YouTube counts a tag with a space as if it were quoted, plus a comma between tags


def song_marker(song_id: str) -> str:
    return f"{MARKER_PREFIX}{song_id}"


def carries_marker(description: str, marker: str) -> bool:
    """Whether `description` is one covermill wrote with `marker`: the marker is its last line, which
    video_body writes after everything a template or a tag can bring in (a song's artist tag
    `covermill:<another id>` inside the text must not make that other song count as published)."""
    lines = description.strip().splitlines()
    return bool(lines) and lines[-1].strip() == marker


def _tag_cost(tag: str) -> int:
    return len(tag) + (2 if " " in tag else 0)


def fit_tags(tags: list[str]) -> list[str]:
    """Unique, non-empty tags without angle brackets or control characters, in order, within YouTube's 500 characters."""
    kept: list[str] = []
    seen: set[str] = set()
    used = 0
    for tag in tags:
        tag = " ".join(without_controls(tag).replace("<", "").replace(">", "").replace(",", " ").split())[:100]
        if not tag or tag.lower() in seen:
            continue
        cost = _tag_cost(tag) + (1 if kept else 0)
        if used + cost > TAGS_MAX_CHARS:
            break
        kept.append(tag)
        seen.add(tag.lower())
        used += cost
    return kept


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def video_body(song: Song, publication: Publication, *, tags: list[str], category_id: str,
               privacy_status: str, publish_at: datetime | None = None, language: str | None = None) -> dict[str, Any]:
    """The `videos.insert` body. A publishAt makes the video private until that moment (YouTube's rule)."""
    marker = f"\n\n{song_marker(song.id)}"
    description = fit_description(publication.description, DESCRIPTION_MAX_BYTES - len(marker.encode("utf-8"))) + marker
    snippet: dict[str, Any] = {
        "title": publication.title,
        "description": description,
        "tags": fit_tags([*tags, song.artist, song.title]),
        "categoryId": category_id,
    }
    if language:
        snippet["defaultLanguage"] = snippet["defaultAudioLanguage"] = language
    status: dict[str, Any] = {
        "privacyStatus": "private" if publish_at is not None else privacy_status,
        "selfDeclaredMadeForKids": False,
        "containsSyntheticMedia": True,
    }
    if publish_at is not None:
        status["publishAt"] = rfc3339(publish_at)
    return {"snippet": snippet, "status": status}
