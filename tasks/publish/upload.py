"""Upload stage: publish one song's video, thumbnail and playlist entry on YouTube, exactly once.

The ledger is written before and during the upload, not only after: an attempt is recorded
before a session is opened, the session URI as soon as the server gives one, the video id when it
answers. A run that died anywhere in between looks in that order for the video it may already
have made (the session's status, then its marker in the channel's uploads) and resumes or
recovers instead of uploading a second copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from google.auth.exceptions import RefreshError
from googleapiclient.errors import HttpError
from pydantic import Field, field_validator

from covermill.tasks.core.atomic import read_json
from covermill.tasks.core.errors import CovermillError, SessionGone, SongBeingPublished, UploadGaveUp
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.ledger import Ledger, State
from covermill.tasks.core.records import Publication, Song, Upload
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.urls import carries_secrets_safely
from covermill.tasks.publish.channel import Channel, daily_limit
from covermill.tasks.publish.quota import QuotaSettings, pacific_day
from covermill.tasks.publish.request import PART, song_marker, video_body
from covermill.tasks.publish.resumable import ChunkedFileUpload, send
from covermill.tasks.publish.token_store import AuthSettings, reauthorize_message, token_path

CHUNK_GRANULE_KIB = 256  # resumable chunks must be multiples of 256 KiB (all but the last)
PLAYLIST_DESCRIPTION = "Piano covers made and published by covermill."


class UploadSettings(Settings):
    enabled: bool = False  # false: every run is a dry run (request bodies written, nothing sent); --publish overrides
    approval: bool = False  # a person approves each cover in the Prefect UI (approve / pick another / reject) before it may be queued
    approval_timeout_s: int = Field(3600, ge=10)  # unanswered this long: the song stays out of the queue
    auth: AuthSettings = AuthSettings()
    chunk_kib: int = Field(8192, ge=CHUNK_GRANULE_KIB)
    retries: int = Field(8, ge=0)  # failures in a row (without progress) before a song's upload gives up for this run
    backoff_s: float = Field(1.0, gt=0)  # first retry waits up to this, doubling each time
    backoff_max_s: float = Field(64.0, gt=0)
    privacy_status: Literal["private", "unlisted", "public"] = "private"
    schedule: bool = False  # set publishAt (spread over quota.publish_window): private until then, public after
    playlist: str | None = "Piano covers"  # added to this playlist, created when missing; null: none
    playlist_privacy: Literal["private", "unlisted", "public"] = "public"
    category_id: str = "10"  # Music
    tags: list[str] = ["piano cover", "piano", "AI piano cover", "covermill"]
    language: str | None = None  # e.g. "en": defaultLanguage and defaultAudioLanguage
    api_root: str | None = None  # the API's root URL; null: YouTube's (a proxy or the tests' fake otherwise)
    quota: QuotaSettings = QuotaSettings()

    @field_validator("api_root")
    @classmethod
    def _encrypted(cls, root: str | None) -> str | None:
        if root is not None and not carries_secrets_safely(root):
            raise ValueError(f"{root!r} would send the YouTube token unencrypted; use an https:// root (plain http only to 127.0.0.1)")
        return root

    @field_validator("chunk_kib")
    @classmethod
    def _granule(cls, kib: int) -> int:
        if kib % CHUNK_GRANULE_KIB:
            raise ValueError(f"chunk_kib must be a multiple of {CHUNK_GRANULE_KIB} (YouTube's chunk granularity); got {kib}")
        return kib


def request_for(song_id: str, out_dir: Path, settings: UploadSettings, publish_at: datetime | None = None) -> dict[str, Any]:
    """Everything one song's publication sends, from its metadata.json: the dry run writes exactly this."""
    folder = SongFolder(out_dir, song_id)
    if not folder.metadata.exists() or not folder.video.exists():
        raise CovermillError(f"{folder.root}: no finished video to publish (metadata.json or video.mp4 missing); run `covermill run` on its source again.")
    meta = read_json(folder.metadata)
    song = Song.model_validate(meta["song"])
    publication = Publication.model_validate(meta["publication"])
    body = video_body(song, publication, tags=settings.tags, category_id=settings.category_id,
                      privacy_status=settings.privacy_status, publish_at=publish_at, language=settings.language)
    return {
        "videos.insert": {"part": PART, "body": body, "media": str(folder.video), "bytes": folder.video.stat().st_size,
                          "chunk_bytes": settings.chunk_kib * 1024, "uploadType": "resumable"},
        "thumbnails.set": {"media": str(folder.thumbnail)},
        "playlistItems.insert": {"playlist": settings.playlist} if settings.playlist else None,
    }


class Publisher:
    """Publishes songs from one work folder through one authorized `youtube` client."""

    def __init__(self, youtube: Any, ledger: Ledger, out_dir: Path, settings: UploadSettings,
                 now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 sleep: Callable[[float], None] = time.sleep, logger: logging.Logger | logging.LoggerAdapter | None = None):
        self.youtube = youtube
        self.ledger = ledger
        self.out_dir = Path(out_dir)
        self.settings = settings
        self.now = now
        self.sleep = sleep
        self.logger = logger or logging.getLogger("covermill.upload")
        self.channel = Channel(youtube, self._count, settings.retries)

    def _count(self, method: str) -> None:
        self.ledger.count_call(pacific_day(self.now()).isoformat(), method)

    def publish(self, song_id: str, publish_at: datetime | None = None) -> Upload:
        """Video, thumbnail, playlist entry: each step once, whatever a previous run got through.
        The song is claimed in the ledger first: two publishers at once (a nightly and `publish`,
        two workers) would otherwise both find it unpublished and both upload it."""
        holder = self.ledger.claim(song_id)
        if holder is not None:
            raise SongBeingPublished(song_id, holder)
        try:
            upload = self._video(song_id, publish_at)
            upload = self._thumbnail(song_id, upload)
            upload = self._playlist(song_id, upload)
        except RefreshError:
            raise CovermillError(reauthorize_message(token_path(self.out_dir, self.settings.auth))) from None
        except UploadGaveUp as gave_up:
            raise CovermillError(f"the upload of song {song_id} {gave_up}; the next run resumes it where it stopped.") from None
        except HttpError as error:
            limit = daily_limit(error)
            if limit is not None:
                raise limit from error
            raise CovermillError(f"YouTube refused to publish song {song_id}: {error.status_code} {error.reason}.") from error
        else:
            self.ledger.mark(song_id, "upload", State.DONE, upload.video_id or "")
        finally:
            self.ledger.release(song_id)
        return upload

    def _record(self, song_id: str, upload: Upload, **changes: Any) -> Upload:
        upload = upload.model_copy(update=changes)
        self.ledger.record_upload(song_id, upload)
        return upload

    def _video(self, song_id: str, publish_at: datetime | None) -> Upload:
        request = request_for(song_id, self.out_dir, self.settings, publish_at)["videos.insert"]
        size = request["bytes"]
        upload = self.ledger.upload(song_id)
        if upload is not None and upload.video_id:
            return upload
        day = pacific_day(self.now()).isoformat()
        stamp = {"day": day, "publish_at": request["body"]["status"].get("publishAt")}
        if upload is not None:
            found = self._recover(song_id, upload, size, request["body"])
            if found is not None:
                self.logger.info("song %s: found video %s from an earlier run; not uploading again", song_id, found)
                return self._record(song_id, upload, video_id=found, **stamp)
        upload = self._record(song_id, Upload(started=time.time(), media_bytes=size))
        self._count("videos.insert")
        return self._send(song_id, upload, self._insert(song_id, request["body"]), size, None, stamp)

    def _insert(self, song_id: str, body: dict[str, Any]) -> Any:
        """The resumable videos.insert request for the song's video (a new session, or one to resume)."""
        media = ChunkedFileUpload(str(SongFolder(self.out_dir, song_id).video), mimetype="video/mp4",
                                  chunksize=self.settings.chunk_kib * 1024, resumable=True)
        return self.youtube.videos().insert(part=PART, body=body, media_body=media)

    def _recover(self, song_id: str, upload: Upload, size: int, body: dict[str, Any]) -> str | None:
        """The video of an earlier attempt, if it reached YouTube (resuming its session when it did not finish)."""
        if upload.session_uri and upload.media_bytes == size:
            insert = self._insert(song_id, body)
            try:
                self.logger.info("song %s: resuming the upload session of an earlier run", song_id)
                done = self._send(song_id, upload, insert, size, upload.session_uri, {})
                return done.video_id
            except SessionGone:
                self.logger.info("song %s: the earlier upload session is gone; looking for its video in the channel", song_id)
        return self.channel.find_upload(song_marker(song_id))

    def _send(self, song_id: str, upload: Upload, insert: Any, size: int, session_uri: str | None, stamp: dict) -> Upload:
        current = [upload]

        def keep_session(uri: str) -> None:
            current[0] = self._record(song_id, current[0], session_uri=uri)

        def report(sent: int, total: int) -> None:
            self.logger.info("song %s: %.1f of %.1f MB sent (%.0f%%)", song_id, sent / 1e6, total / 1e6, 100 * sent / max(total, 1))

        response = send(insert, size=size, session_uri=session_uri, on_session=keep_session, on_progress=report,
                        retries=self.settings.retries, backoff_s=self.settings.backoff_s,
                        backoff_max_s=self.settings.backoff_max_s, sleep=self.sleep)
        return self._record(song_id, current[0], video_id=response["id"], **stamp)

    def _thumbnail(self, song_id: str, upload: Upload) -> Upload:
        if upload.thumbnail_set:
            return upload
        image = SongFolder(self.out_dir, song_id).thumbnail
        try:
            self.channel.set_thumbnail(upload.video_id, image)
        except HttpError as error:
            if error.status_code != 403:
                raise
            # custom thumbnails need a verified channel; the video stands without one
            self.logger.warning("song %s: YouTube refused the thumbnail (%s); the video keeps YouTube's own frame", song_id, error.reason)
            return upload
        return self._record(song_id, upload, thumbnail_set=True)

    def _playlist(self, song_id: str, upload: Upload) -> Upload:
        title = self.settings.playlist
        if not title or upload.playlist_item:
            return upload
        playlist_id = self._playlist_id(title)
        try:
            item = self.channel.add_to_playlist(playlist_id, upload.video_id)
        except HttpError as error:
            if error.status_code != 404:
                raise
            self.ledger.forget_playlist(title)  # deleted on YouTube since: make it again
            item = self.channel.add_to_playlist(self._playlist_id(title), upload.video_id)
        return self._record(song_id, upload, playlist_item=item)

    def _playlist_id(self, title: str) -> str:
        found = self.ledger.playlist_id(title) or self.channel.find_playlist(title)
        if found is None:
            found = self.channel.create_playlist(title, PLAYLIST_DESCRIPTION, self.settings.playlist_privacy)
            self.logger.info("created the playlist %r", title)
        self.ledger.record_playlist(title, found)
        return found

