"""After a run: the review gallery rewritten, and the song's files linked in the Prefect UI.

Neither may fail a song that is otherwise done: a page that cannot be written is a warning.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from covermill.flows.config import CovermillConfig
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.records import Song
from covermill.tasks.core.run_artifacts import link_song_files
from covermill.tasks.media.gallery import write_gallery


def refresh_gallery(out_dir: Path, config: CovermillConfig) -> Path | None:
    if not config.gallery.enabled:
        return None
    try:
        return write_gallery(Path(out_dir), config.gallery)
    except Exception as exc:  # noqa: BLE001 - a review page is never worth a failed run
        get_run_logger().warning("the review gallery was not written: %r", exc)
        return None


def show_song(song: Song, out_dir: Path, config: CovermillConfig) -> None:
    """Link artifacts for the song's thumbnail, video, MIDI and review page, then the gallery."""
    refresh_gallery(out_dir, config)
    review = SongFolder(out_dir, song.id).review_page
    link_song_files(song, Path(out_dir), config.gallery.base_url, {"review": review} if review.exists() else None)
