"""The publishing queue: finished videos waiting for YouTube, best first, and what today allows.

A song waits once its video is made and until its upload is done, unless a person rejected it or
the recognisability gate held it back and nobody approved it since. The queue is ordered by the
ranking's combined score of the winner (lower is better), so when the budget is short the best
covers go first and the rest wait for the next Pacific-time quota day.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.ledger import APPROVAL_STAGE, IDENTITY_STAGE, Ledger, State
from covermill.tasks.core.records import Record
from covermill.tasks.publish.quota import QuotaSettings, pacific_day, publish_times, uploads_that_fit


class Waiting(Record):
    song_id: str
    title: str
    combined: float  # the winner's ranking score, lower is better
    qmax: float
    pick: str
    on_youtube: bool = False  # the video is up; only its thumbnail or playlist entry is missing


class Budget(Record):
    day: str  # the Pacific quota day
    calls: dict[str, int]  # API calls counted today, by method
    uploaded: int  # songs published today
    stopped: str | None  # why YouTube said no more today, if it did
    allowed: int  # how many more songs fit today


class Slot(Record):
    song: Waiting
    publish_at: datetime | None = None


def waiting(ledger: Ledger, out_dir: Path) -> list[Waiting]:
    """Songs with a finished video and no finished upload, best first."""
    found = []
    uploads = ledger.uploads()
    for song in ledger.songs():
        if not ledger.is_done(song.id, "video") or ledger.is_done(song.id, "upload"):
            continue
        answer = ledger.stage_state(song.id, APPROVAL_STAGE)
        if answer is not None and answer[0] != State.DONE:  # waiting for a person, or rejected by one
            continue
        identity = ledger.stage_state(song.id, IDENTITY_STAGE)
        if identity is not None and identity[0] == State.HELD and answer is None:  # not recognisable, and nobody approved it
            continue
        folder = SongFolder(out_dir, song.id)
        if not (folder.metadata.exists() and folder.video.exists()):  # deleted by hand: nothing to send
            continue
        ranking = ledger.ranking(song.id)
        score = next((s for s in ranking.scores if s.candidate_id == ranking.pick), None) if ranking else None
        if score is None:
            continue
        upload = uploads.get(song.id)
        found.append(Waiting(song_id=song.id, title=song.title, combined=score.combined, qmax=score.qmax,
                             pick=score.candidate_id, on_youtube=bool(upload and upload.video_id)))
    # a song already on YouTube goes first: finishing it costs no videos.insert
    return sorted(found, key=lambda w: (not w.on_youtube, w.combined, w.song_id))


def todays_budget(ledger: Ledger, quota: QuotaSettings, now: datetime) -> Budget:
    day = pacific_day(now).isoformat()
    calls = ledger.calls_on(day)
    uploaded = sum(1 for u in ledger.uploads().values() if u.video_id and u.day == day)
    stopped = ledger.day_stopped(day)
    allowed = 0 if stopped else uploads_that_fit(calls, uploaded, quota)
    return Budget(day=day, calls=calls, uploaded=uploaded, stopped=stopped, allowed=allowed)


def todays_slots(queue: list[Waiting], budget: Budget, quota: QuotaSettings, now: datetime, schedule: bool) -> list[Slot]:
    """The songs published today, in order, each with its publishAt when scheduling is on."""
    chosen = queue[: budget.allowed]
    times = publish_times(len(chosen), now, quota) if schedule else [None] * len(chosen)
    return [Slot(song=song, publish_at=at) for song, at in zip(chosen, times)]
