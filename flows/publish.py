"""publish: today's share of the queue goes to YouTube (or, in a dry run, into upload_request.json).

Every waiting song gets its upload_request.json, the exact request it would send; the ones
today's budget allows (best first) carry their publishAt. With publishing on, those are uploaded
in order; a daily limit from YouTube stops the day without failing the run, and one song's error
does not stop the others.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from prefect import flow, get_run_logger

from covermill.flows.config import CovermillConfig
from covermill.flows.outcome import failure_sentence
from covermill.flows.review import refresh_gallery
from covermill.tasks.core.atomic import write_json
from covermill.tasks.core.errors import DailyLimitReached, SongBeingPublished
from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import Ledger, State
from covermill.tasks.core.records import PublishResult
from covermill.tasks.core.stage_task import stage_task
from covermill.tasks.publish.client import youtube_client
from covermill.tasks.publish.queue import Slot, todays_budget, todays_slots, waiting
from covermill.tasks.publish.token_store import load_credentials, persist_if_refreshed, token_path
from covermill.tasks.publish.upload import Publisher, UploadSettings, request_for


def write_requests(out: Path, queue: list, slots: list[Slot], settings: UploadSettings, day: str) -> None:
    """upload_request.json beside each waiting video: today's with their publishAt, the rest marked as waiting."""
    today = {slot.song.song_id: (number, slot.publish_at) for number, slot in enumerate(slots, 1)}
    for song in queue:
        number, publish_at = today.get(song.song_id, (None, None))
        write_json(SongFolder(out, song.song_id).upload_request, {
            "quota_day": day,
            "today": number is not None,
            "position": number,
            "request": request_for(song.song_id, out, settings, publish_at),
        })


# No Prefect retries: the upload retries itself (upload.retries failures in a row, with backoff,
# resuming the session each time); Prefect's on top multiplied that by three, for minutes more of
# the same failing request. A song that gave up is tried again by the next run.
@stage_task("upload", retries=0)
def upload_song(publisher: Publisher, song_id: str, publish_at: datetime | None) -> str:
    return publisher.publish(song_id, publish_at).video_id or ""


@flow(name="publish", log_prints=True)
def publish(out_dir: str = "out", config: CovermillConfig | None = None, dry_run: bool = True) -> PublishResult:
    """Upload what today's YouTube budget allows from the work folder, best covers first."""
    config = config or CovermillConfig()
    settings = config.upload
    out = Path(out_dir)
    ledger = Ledger(ledger_path(out))
    logger = get_run_logger()
    now = datetime.now(timezone.utc)
    queue = waiting(ledger, out)
    budget = todays_budget(ledger, settings.quota, now)
    slots = todays_slots(queue, budget, settings.quota, now, settings.schedule)
    write_requests(out, queue, slots, settings, budget.day)
    planned = PublishResult(day=budget.day, waiting=len(queue), planned=[s.song.song_id for s in slots],
                            stopped=budget.stopped, dry_run=dry_run)
    if budget.stopped:
        logger.info("YouTube stopped today's uploads earlier (%s); %d songs wait for tomorrow", budget.stopped, len(queue))
    if dry_run:
        logger.info("dry run: %d of %d waiting songs would be published today; requests written to each song's "
                    "upload_request.json (`covermill queue` lists them)", len(slots), len(queue))
        return planned
    if not slots:
        return planned
    published: dict[str, str] = {}
    failed: dict[str, str] = {}
    stopped = budget.stopped
    credentials = load_credentials(settings.auth, out, logger=logger)
    publisher = Publisher(youtube_client(credentials, settings.api_root), ledger, out, settings, logger=logger)
    try:
        for slot in slots:
            try:
                video_id = upload_song(publisher, slot.song.song_id, slot.publish_at)
            except DailyLimitReached as limit:
                ledger.stop_day(budget.day, limit.reason)
                stopped = limit.reason
                logger.warning("YouTube answered %s: no more uploads today; the rest wait for tomorrow", limit.reason)
                break
            except SongBeingPublished as busy:  # another publisher has it; its outcome is its own to record
                logger.info("%s", busy)
                continue
            except Exception as error:  # noqa: BLE001 - one song's failure never stops the others
                reason = failure_sentence(error, f"song {slot.song.song_id}")
                failed[slot.song.song_id] = reason
                ledger.mark(slot.song.song_id, "upload", State.FAILED, reason)  # the gallery shows it; the next run retries
                logger.error("song %s was not published: %s", slot.song.song_id, reason)
                continue
            published[slot.song.song_id] = video_id
            logger.info("published %r: https://youtu.be/%s", slot.song.title, video_id)
    finally:
        persist_if_refreshed(credentials, token_path(out, settings.auth))
    if published or failed:
        refresh_gallery(out, config)  # upload statuses changed
    return planned.model_copy(update={"published": published, "failed": failed, "stopped": stopped})
