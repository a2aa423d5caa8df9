"""The YouTube calls around an upload: thumbnail, playlist, and finding a video already uploaded.

Every call is reported to `count(method)` before it is made, so the ledger knows what today's
quota has spent even when the call then fails (YouTube charges failed calls too). Daily limits
become DailyLimitReached, which stops publishing for the day without failing the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from googleapiclient.errors import HttpError
from googleapiclient.http import MediaFileUpload

from covermill.tasks.core.errors import DailyLimitReached
from covermill.tasks.publish.request import carries_marker
from covermill.tasks.publish.resumable import backoff_delay, is_retryable

# 403 reasons that mean "not again today": the project's quota, or the channel's own upload cap.
DAILY_LIMIT_REASONS = {"quotaExceeded", "dailyLimitExceeded", "uploadLimitExceeded"}
UPLOADS_SEARCHED = 200  # newest uploads looked through for a lost video (4 pages, 1 unit each)


def error_reason(error: HttpError) -> str:
    details = error.error_details
    if isinstance(details, list) and details and isinstance(details[0], dict):
        return str(details[0].get("reason", ""))
    return ""


def daily_limit(error: Exception) -> DailyLimitReached | None:
    """The DailyLimitReached an HttpError stands for, if it is one."""
    if isinstance(error, HttpError) and error.status_code in (403, 429) and error_reason(error) in DAILY_LIMIT_REASONS:
        return DailyLimitReached(error_reason(error), error.reason)
    return None


class Channel:
    """The authorized user's channel, through a `youtube` service object."""

    def __init__(self, youtube: Any, count: Callable[[str], None], retries: int = 5,
                 sleep: Callable[[float], None] = time.sleep):
        self.youtube = youtube
        self.count = count
        self.retries = retries
        self.sleep = sleep

    def _execute(self, method: str, request: Any, retries: int | None = None) -> Any:
        self.count(method)
        try:
            # the client's own retry: 5xx and broken connections, exponential backoff with jitter
            return request.execute(num_retries=self.retries if retries is None else retries)
        except HttpError as error:
            limit = daily_limit(error)
            if limit is not None:
                raise limit from error
            raise

    def set_thumbnail(self, video_id: str, image: Path) -> None:
        media = MediaFileUpload(str(image), mimetype="image/jpeg", resumable=False)
        self._execute("thumbnails.set", self.youtube.thumbnails().set(videoId=video_id, media_body=media))

    def find_playlist(self, title: str) -> str | None:
        request = self.youtube.playlists().list(part="snippet", mine=True, maxResults=50)
        while request is not None:
            answer = self._execute("playlists.list", request)
            for item in answer.get("items", []):
                if item.get("snippet", {}).get("title") == title:
                    return item["id"]
            request = self.youtube.playlists().list_next(request, answer)
        return None

    def create_playlist(self, title: str, description: str, privacy_status: str) -> str:
        body = {"snippet": {"title": title, "description": description}, "status": {"privacyStatus": privacy_status}}
        return self._execute("playlists.insert", self.youtube.playlists().insert(part="snippet,status", body=body))["id"]

    def add_to_playlist(self, playlist_id: str, video_id: str) -> str:
        """The video's entry in the playlist, made once. An insert whose answer was lost (a cut
        connection, a 5xx, a killed run) may have happened all the same, and httplib2 re-sends on
        its own a POST whose connection closed unanswered. So the playlist is asked first and
        after every failure, and once an insert went through, an entry the resend doubled is
        deleted again (2 units a publication; a delete costs 50, only when it happened)."""
        made = self.playlist_items(playlist_id, video_id)
        body = {"snippet": {"playlistId": playlist_id, "resourceId": {"kind": "youtube#video", "videoId": video_id}}}
        failures = 0
        while not made:
            try:
                inserted = self._execute("playlistItems.insert", self.youtube.playlistItems().insert(
                    part="snippet", body=body), retries=0)["id"]
            except Exception as error:  # noqa: BLE001 - sorted into retryable or not right below
                failures += 1
                if not is_retryable(error) or failures > self.retries:
                    raise
                made = self.playlist_items(playlist_id, video_id)
                if not made:
                    self.sleep(backoff_delay(failures, 1.0, 32.0))
                continue
            made = self.playlist_items(playlist_id, video_id) or [inserted]  # a resend may have doubled it
        for extra in made[1:]:
            self._execute("playlistItems.delete", self.youtube.playlistItems().delete(id=extra))
        return made[0]

    def playlist_items(self, playlist_id: str, video_id: str) -> list[str]:
        """The ids of the video's entries in the playlist, oldest first (1 unit)."""
        answer = self._execute("playlistItems.list", self.youtube.playlistItems().list(
            part="id", playlistId=playlist_id, videoId=video_id, maxResults=50))
        return [item["id"] for item in answer.get("items", [])]

    def find_upload(self, marker: str, limit: int = UPLOADS_SEARCHED) -> str | None:
        """The id of the newest upload whose description ends with the line `marker`, if any.

        The channel's uploads playlist costs 1 unit a page and lists a video as soon as it is
        accepted; search.list costs 100 and lags behind, so it is not used.
        """
        channels = self._execute("channels.list", self.youtube.channels().list(part="contentDetails", mine=True))
        if not channels.get("items"):
            return None
        uploads = channels["items"][0]["contentDetails"]["relatedPlaylists"]["uploads"]
        request = self.youtube.playlistItems().list(part="snippet", playlistId=uploads, maxResults=50)
        looked = 0
        while request is not None and looked < limit:
            answer = self._execute("playlistItems.list", request)
            for item in answer.get("items", []):
                snippet = item.get("snippet", {})
                if carries_marker(snippet.get("description", ""), marker):
                    return snippet["resourceId"]["videoId"]
            looked += len(answer.get("items", [])) or limit
            request = self.youtube.playlistItems().list_next(request, answer)
        return None
