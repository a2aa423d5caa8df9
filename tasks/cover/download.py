"""download: a URL (yt-dlp) or a local file -> the song's folder with its original audio and a Song.

The folder is named by a hash of the source's identity (extractor + video id, or the file's
content hash), never by its title, so a re-run finds the same folder and skips what is there.
A URL may lead only to public addresses and those download.allow_private names: the source is
checked before yt-dlp starts, and yt-dlp itself checks every fetch (tasks/cover/ytdlp_guard.py).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, IPvAnyNetwork

from covermill.tasks.core.atomic import copy_atomic, file_sha256
from covermill.tasks.core.audio import decode_to_wav, decoded_seconds, probe
from covermill.tasks.core.errors import CovermillError, DiskFull
from covermill.tasks.core.layout import SongFolder, song_id_for
from covermill.tasks.core.records import Song
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.stage_task import stage_logger, stage_task
from covermill.tasks.core.urls import is_url, other_scheme
from covermill.tasks.cover.hosts import url_refusal

if TYPE_CHECKING:
    from covermill.tasks.cover.ytdlp_guard import GuardedYoutubeDL

AUDIO_SUFFIXES = {".mp3", ".ogg", ".oga", ".opus", ".wav", ".flac", ".m4a", ".aac", ".wma", ".aiff", ".aif", ".webm", ".mka"}


class DownloadSettings(Settings):
    max_duration_s: float = Field(1200.0, gt=0, description="Longer songs are refused before download.")
    # 20 minutes of WAV is ~210 MB; of any compressed format far less.
    max_megabytes: float = Field(250.0, gt=0, description="Larger downloads are stopped: an announced size before any byte arrives, "
                                                          "an unannounced one as soon as the bytes pass it.")
    min_duration_s: float = Field(5.0, ge=0, description="Shorter audio is refused: too little to cover.")
    format: str = Field("bestaudio/best", description="yt-dlp format selector; audio only, original encoding.")
    socket_timeout_s: float = Field(20.0, gt=0)
    retries: int = Field(3, ge=0, description="yt-dlp's own retries for a flaky connection.")
    allow_private: list[IPvAnyNetwork] = Field(
        default_factory=list, description="Private addresses or networks (10.0.0.5, 192.168.1.0/24, 127.0.0.1) that URLs may "
                                          "reach; every other non-public address (this machine, the LAN, link-local) is refused.")


@dataclass(frozen=True)
class SourceInfo:
    """What is known about a source before its audio is fetched."""

    source: str
    source_id: str
    title: str
    artist: str
    duration: float | None
    ytdlp_info: dict[str, Any] | None = None  # the extracted info dict, for URLs
    genre: str = ""  # the file's genre tag or the site's genre, when there is one

    @property
    def song_id(self) -> str:
        return song_id_for(self.source_id)


def expand_sources(sources: list[str]) -> list[str]:
    """Folders become the audio files inside them (sorted); URLs and files pass through."""
    expanded: list[str] = []
    for source in sources:
        path = Path(source)
        if not is_url(source) and path.is_dir():
            files = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                raise CovermillError(f"{path}: the folder has no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}).")
            expanded.extend(files)
        else:
            expanded.append(source)
    return expanded


def check_duration(source: str, duration: float | None, settings: DownloadSettings) -> None:
    if duration is None:
        return
    if duration > settings.max_duration_s:
        raise CovermillError(
            f"{source}: the song lasts {duration / 60:.1f} min, over the {settings.max_duration_s / 60:.1f} min limit; "
            "raise download.max_duration_s in config.yaml to allow it."
        )
    if duration < settings.min_duration_s:
        raise CovermillError(
            f"{source}: the audio lasts {duration:.1f} s, under the {settings.min_duration_s:g} s minimum; give a longer recording."
        )


def identify_file(path: Path) -> SourceInfo:
    info = probe(path)
    return SourceInfo(
        source=str(path),
        source_id=f"file:{file_sha256(path)}",
        title=info.tag("title") or path.stem,
        artist=info.tag("artist", "album_artist", "composer"),
        genre=info.tag("genre"),
        duration=info.duration,
    )


class _QuietLogger:
    """yt-dlp's messages go to our logger at debug level; its errors come back as exceptions."""

    def __init__(self, logger: logging.Logger):
        self.logger = logger
        self.said: list[str] = []  # for what yt-dlp only says (a file skipped for its size)

    def debug(self, msg: str) -> None:
        self.said.append(msg)
        self.logger.debug(msg)

    info = debug

    def warning(self, msg: str) -> None:
        self.logger.debug(msg)

    def error(self, msg: str) -> None:
        self.logger.debug(msg)


def ytdlp_options(settings: DownloadSettings, **extra: Any) -> dict[str, Any]:
    return {
        "format": settings.format,
        "noplaylist": True,
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "socket_timeout": settings.socket_timeout_s,
        "retries": settings.retries,
        "logger": _QuietLogger(logging.getLogger("covermill.download")),
        **extra,
    }


def guarded_ytdlp(settings: DownloadSettings, **extra: Any) -> GuardedYoutubeDL:
    """yt-dlp with `ytdlp_options`, every fetch held to download.allow_private (tasks/cover/ytdlp_guard.py)."""
    from covermill.tasks.cover.ytdlp_guard import GuardedYoutubeDL

    return GuardedYoutubeDL(ytdlp_options(settings, **extra), settings.allow_private)


def check_address(url: str, settings: DownloadSettings) -> None:
    """Refuse a URL that is not http(s) or whose host is a private address not allowed, before any fetch."""
    refusal = url_refusal(url, settings.allow_private)
    if refusal:
        raise CovermillError(f"{url}: not downloaded, {refusal.says('it points to')}.")


def refused(url: str, ydl: GuardedYoutubeDL) -> CovermillError | None:
    """The first fetch the guard refused (a redirect, a page's media, a fragment), as one sentence."""
    return CovermillError(f"{url}: not downloaded, {ydl.refusals[0].reason}.") if ydl.refusals else None


def ytdlp_failure(url: str, exc: Exception, ydl: GuardedYoutubeDL | None = None) -> CovermillError:
    # a refusal first: yt-dlp may have wrapped it, or failed differently after swallowing it
    if ydl is not None and (refusal := refused(url, ydl)):
        return refusal
    text = str(exc).strip()
    # yt-dlp appends the transport's own repetition of the cause; the first clause is the sentence.
    reason = text.removeprefix("ERROR: ").splitlines()[0].split(" (caused by ")[0] if text else type(exc).__name__
    return CovermillError(f"{url}: could not download ({reason}); check the address and that it is reachable.")


def check_not_live(url: str, info: dict[str, Any]) -> None:
    if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
        raise CovermillError(f"{url}: this is a live stream, which has no end to cover; give the address of a recording.")


def identify_url(url: str, settings: DownloadSettings) -> SourceInfo:
    from yt_dlp.utils import YoutubeDLError

    check_address(url, settings)
    ydl = guarded_ytdlp(settings)
    try:
        with ydl:
            info = ydl.extract_info(url, download=False, process=False)
    except YoutubeDLError as exc:
        raise ytdlp_failure(url, exc, ydl) from None
    if error := refused(url, ydl):  # refused on the way, though yt-dlp went on
        raise error
    if info.get("_type") in ("playlist", "multi_video"):
        raise CovermillError(f"{url}: this is a playlist; give the URL of one song.")
    check_not_live(url, info)
    extractor = str(info.get("extractor_key") or info.get("extractor") or "url").lower()
    # A generic extractor's id is only a file name: the URL itself is the identity.
    source_id = f"url:{info.get('webpage_url') or url}" if extractor == "generic" else f"{extractor}:{info['id']}"
    return SourceInfo(
        source=url,
        source_id=source_id,
        title=str(info.get("track") or info.get("title") or info.get("id") or "untitled"),
        artist=str(info.get("artist") or info.get("creator") or info.get("uploader") or info.get("channel") or ""),
        genre=str(info.get("genre") or ", ".join(info.get("genres") or []) or ""),
        duration=float(info["duration"]) if info.get("duration") else None,
        ytdlp_info=info,
    )


class DownloadTooLarge(Exception):
    """Raised from yt-dlp's progress hook when the bytes pass download.max_megabytes."""


def _size_cap(limit: int):  # noqa: ANN202 (a yt-dlp progress hook)
    def hook(progress: dict[str, Any]) -> None:
        if (progress.get("downloaded_bytes") or 0) > limit:
            raise DownloadTooLarge(limit)

    return hook


def _too_large(source: str, settings: DownloadSettings) -> CovermillError:
    return CovermillError(f"{source}: the download is larger than download.max_megabytes ({settings.max_megabytes:g} MB); "
                          "give a shorter song or raise the limit.")


def fetch_url(ident: SourceInfo, folder: SongFolder, settings: DownloadSettings) -> Path:
    """Download the audio (no re-encoding) into the song folder; only a finished file lands there.

    The size cap holds before the body arrives where the size is announced (the extractor's filesize,
    the server's Content-Length through yt-dlp's max_filesize), and as the bytes arrive where it is
    not (a progress hook stops the transfer). A stopped or failed transfer leaves nothing behind."""
    from yt_dlp.utils import YoutubeDLError

    limit = int(settings.max_megabytes * 1e6)
    info = dict(ident.ytdlp_info or {})
    announced = info.get("filesize") or info.get("filesize_approx")
    if isinstance(announced, (int, float)) and announced > limit:
        raise _too_large(ident.source, settings)
    staging = folder.root / ".download"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    said = _QuietLogger(logging.getLogger("covermill.download"))
    ydl = guarded_ytdlp(settings, outtmpl={"default": str(staging / "original.%(ext)s")}, max_filesize=limit,
                        progress_hooks=[_size_cap(limit)], logger=said)
    try:
        with ydl:
            ydl.process_ie_result(info, download=True)
        if error := refused(ident.source, ydl):
            raise error
        fetched = [p for p in staging.iterdir() if p.is_file() and not p.name.endswith((".part", ".ytdl"))]
        if not fetched and any("larger than max-filesize" in line for line in said.said):
            raise _too_large(ident.source, settings)  # yt-dlp skips such a file and only says so
        if not fetched:
            raise CovermillError(f"{ident.source}: the download produced no file; try again or check the URL.")
        target = folder.original(fetched[0].suffix.lower())
        fetched[0].replace(target)
        return target
    except DownloadTooLarge:
        raise _too_large(ident.source, settings) from None
    except YoutubeDLError as exc:
        if isinstance((getattr(exc, "exc_info", None) or (None, None))[1], DownloadTooLarge):
            raise _too_large(ident.source, settings) from None
        raise ytdlp_failure(ident.source, exc, ydl) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def copy_file(path: Path, folder: SongFolder) -> Path:
    return copy_atomic(path, folder.original(path.suffix.lower() or ".audio"))


def check_scheme(source: str) -> None:
    """Refuse an address of another scheme (file://, ftp://, data:) that is no local path, rather
    than look for it as a file: only http(s) is fetched, and a local file is given by its path."""
    if not is_url(source) and other_scheme(source) and not Path(source).exists():
        refusal = url_refusal(source, [])
        raise CovermillError(f"{source}: not downloaded, {refusal.says('it points to')}; give an http(s) URL, or a local file by its path.")


def check_decoded(source: str, audio: Path, duration: float, settings: DownloadSettings) -> None:
    """A file cut short (an interrupted copy or download) can announce more than it holds: the
    minimum holds for what decodes."""
    decoded = decoded_seconds(audio)
    if decoded < settings.min_duration_s:
        raise CovermillError(f"{source}: only {decoded:.1f} s of its {duration:.1f} s could be decoded, under the "
                             f"{settings.min_duration_s:g} s minimum; the file seems cut short, give the complete file.")


def _discard(folder: SongFolder, *files: Path) -> None:
    """A refused song's files are not kept (nor its folder, when that leaves it empty)."""
    for path in files:
        path.unlink(missing_ok=True)
    if folder.root.is_dir() and not any(folder.root.iterdir()):
        folder.root.rmdir()


def download_song(source: str, out_dir: Path, settings: DownloadSettings) -> Song:
    """Fetch or copy `source` into its song folder (skipping what is already there) and describe it."""
    check_scheme(source)
    ident = identify_url(source, settings) if is_url(source) else identify_file(Path(source))
    check_duration(source, ident.duration, settings)
    folder = SongFolder(out_dir, ident.song_id)
    folder.root.mkdir(parents=True, exist_ok=True)
    original = folder.find_original()
    if original is None:
        original = fetch_url(ident, folder, settings) if is_url(source) else copy_file(Path(source), folder)
    try:
        duration = probe(original).duration
        check_duration(source, duration, settings)  # a length only known once fetched
        if not folder.audio.exists():
            decode_to_wav(original, folder.audio, subject=source)
        check_decoded(source, folder.audio, duration, settings)
    except DiskFull:
        raise  # nothing wrong with the song: kept for the next run
    except CovermillError:
        _discard(folder, folder.audio, original)
        raise
    return Song(
        id=ident.song_id,
        source=source,
        source_id=ident.source_id,
        title=ident.title,
        artist=ident.artist,
        genre=ident.genre,
        duration=duration,
        original=original,
        audio=folder.audio,
    )


@stage_task("download", retries=1)
def download(source: str, out_dir: Path, settings: DownloadSettings) -> Song:
    song = download_song(source, out_dir, settings)
    stage_logger("download").info("download: %r by %r, %.1f s -> %s", song.title, song.artist or "unknown", song.duration, song.original)
    return song
