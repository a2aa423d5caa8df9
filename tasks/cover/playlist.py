"""Playlists for the nightly run: what songs a playlist holds.

A playlist is a web playlist yt-dlp can read (YouTube, an RSS feed, ...), read with flat
extraction so nothing is downloaded to list it; a folder of audio files; or a text file with one
URL or path per line. Each entry's `source` is what `cover_song` is given and what the ledger's
playlist archive remembers, so a song done on one night is not processed again on the next.
A web playlist is read through the same address checks as a download (download.allow_private);
its entries are checked again when each is downloaded, so an entry that points inside the network
fails with its sentence and the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.urls import is_url
from covermill.tasks.cover.download import DownloadSettings, check_address, expand_sources, guarded_ytdlp, refused, ytdlp_failure

PLAYLIST_FILE_SUFFIXES = {".txt", ".list", ".m3u", ".m3u8"}


@dataclass(frozen=True)
class Entry:
    source: str  # a URL or a file path, as cover_song takes it
    title: str = ""


def _text_file(path: Path) -> list[Entry]:
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if is_url(line):
            entries.append(Entry(line))
        else:  # a path relative to the list itself, so the list can travel with its files
            entries.append(Entry(str((path.parent / line).expanduser().resolve())))
    return entries


def _web_playlist(url: str, settings: DownloadSettings) -> list[Entry]:
    from yt_dlp.utils import YoutubeDLError, unsmuggle_url

    check_address(url, settings)
    ydl = guarded_ytdlp(settings, extract_flat="in_playlist")
    try:
        with ydl:
            info: dict[str, Any] = ydl.extract_info(url, download=False)
    except YoutubeDLError as exc:
        raise ytdlp_failure(url, exc, ydl) from None
    if error := refused(url, ydl):
        raise error
    if info.get("_type") not in ("playlist", "multi_video"):
        return [Entry(url, str(info.get("title") or ""))]  # one song given as a playlist of one
    entries = []
    for item in info.get("entries") or []:
        if not item:
            continue
        link = item.get("url") or item.get("webpage_url")
        if link and is_url(str(link)):
            # a feed item's guid rides along smuggled in the URL's fragment: keep the plain address,
            # which is also what the song's description credits
            entries.append(Entry(unsmuggle_url(str(link))[0], str(item.get("title") or "")))
    return entries


def read_playlist(source: str, settings: DownloadSettings | None = None) -> list[Entry]:
    """The playlist's songs in order, without duplicates."""
    settings = settings or DownloadSettings()
    path = Path(source).expanduser()
    if is_url(source):
        entries = _web_playlist(source, settings)
    elif path.is_dir():
        entries = [Entry(s) for s in expand_sources([str(path.resolve())])]
    elif path.is_file() and path.suffix.lower() in PLAYLIST_FILE_SUFFIXES:
        entries = _text_file(path)
    elif path.exists():
        raise CovermillError(f"{source}: not a playlist; give a playlist URL, a folder of audio files, or a text file "
                             f"({', '.join(sorted(PLAYLIST_FILE_SUFFIXES))}) with one URL or path per line.")
    else:
        raise CovermillError(f"{source}: no such playlist file or folder; check the path.")
    seen: set[str] = set()
    unique = [e for e in entries if not (e.source in seen or seen.add(e.source))]
    if not unique:
        raise CovermillError(f"{source}: the playlist is empty.")
    return unique
