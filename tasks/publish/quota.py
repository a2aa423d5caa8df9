"""How many uploads today's YouTube budget allows, and when each is published.

YouTube counts quota per Pacific-time day. Two cost models are in use: the published one gives
`videos.insert` its own bucket of calls (100 a day, 1 per call) and every other method units out
of 10,000 a day (`thumbnails.set` and `playlistItems.insert` 50 each); many older projects still
see 1,600 units per upload out of the same 10,000. On top of the API's budget a channel cap keeps
the channel from looking like a spam bot: a few uploads a day, their publishAt spread over a window.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from covermill.tasks.core.settings import Settings, iana_zone

PACIFIC = ZoneInfo("America/Los_Angeles")
# One published cover: the video, its thumbnail, its place in the playlist.
UPLOAD_METHODS = ("videos.insert", "thumbnails.set", "playlistItems.insert")
MIN_GAP = timedelta(minutes=30)  # between two scheduled publications


class QuotaSettings(Settings):
    model: Literal["per-method", "units-per-upload"] = "per-method"
    daily_units: int = Field(10_000, ge=0)
    # units per call; a method missing here costs 1 unit
    method_units: dict[str, int] = Field(default_factory=lambda: {
        "videos.insert": 0, "thumbnails.set": 50, "playlistItems.insert": 50, "playlistItems.delete": 50,
        "playlists.insert": 50, "playlists.list": 1, "playlistItems.list": 1, "videos.list": 1, "search.list": 100,
    })
    method_daily_calls: dict[str, int] = Field(default_factory=lambda: {"videos.insert": 100})  # per-method model
    units_per_upload: int = Field(1600, ge=0)  # videos.insert's cost in the units-per-upload model
    uploads_per_day: int = Field(3, ge=0)  # the channel's own cap, whatever the API would allow
    publish_timezone: str = "UTC"
    publish_window: tuple[int, int] = (9, 21)  # local hours between which publishAt times are spread

    _known_zone = field_validator("publish_timezone")(staticmethod(iana_zone))

    @field_validator("publish_window")
    @classmethod
    def _hours(cls, window: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= window[0] < window[1] <= 24:
            raise ValueError(f"publish_window must be two hours, start before end, within 0..24; got {list(window)}")
        return window

    def units(self, method: str) -> int:
        if method == "videos.insert" and self.model == "units-per-upload":
            return self.units_per_upload
        return self.method_units.get(method, 1)

    def call_limit(self, method: str) -> int | None:
        return self.method_daily_calls.get(method) if self.model == "per-method" else None


def pacific_day(moment: datetime) -> date:
    """The quota day a moment falls in (YouTube resets quota at midnight Pacific time)."""
    if moment.tzinfo is None:
        raise ValueError("a quota day needs an aware datetime")
    return moment.astimezone(PACIFIC).date()


def fits(calls_today: dict[str, int], planned: dict[str, int], settings: QuotaSettings) -> bool:
    """Whether `planned` calls fit what is left of today's buckets after `calls_today`."""
    total = {m: calls_today.get(m, 0) + planned.get(m, 0) for m in {*calls_today, *planned}}
    for method, calls in total.items():
        limit = settings.call_limit(method)
        if limit is not None and calls > limit:
            return False
    return sum(settings.units(m) * n for m, n in total.items()) <= settings.daily_units


def uploads_that_fit(calls_today: dict[str, int], uploads_today: int, settings: QuotaSettings) -> int:
    """How many more covers may be published today: the API budget and the channel cap both hold."""
    count = 0
    while uploads_today + count < settings.uploads_per_day and fits(
            calls_today, {m: count + 1 for m in UPLOAD_METHODS}, settings):
        count += 1
    return count


def publish_times(count: int, now: datetime, settings: QuotaSettings) -> list[datetime]:
    """`count` publishAt times spread evenly over what is left of today's publish window, or over
    tomorrow's when today's has less than MIN_GAP per upload left (times in `now`'s zone)."""
    if count <= 0:
        return []
    zone = ZoneInfo(settings.publish_timezone)
    local = now.astimezone(zone)
    first, last = settings.publish_window
    for day in (local.date(), local.date() + timedelta(days=1)):
        midnight = datetime.combine(day, time(0), zone)
        start = max(midnight + timedelta(hours=first), local)
        span = midnight + timedelta(hours=last) - start
        if span >= MIN_GAP * count:
            return [(start + span * (i + 0.5) / count).astimezone(now.tzinfo) for i in range(count)]
    # more uploads than a whole window holds at MIN_GAP: tomorrow's window, packed evenly anyway
    start = datetime.combine(local.date() + timedelta(days=1), time(first), zone)
    span = timedelta(hours=last - first)
    return [(start + span * (i + 0.5) / count).astimezone(now.tzinfo) for i in range(count)]
