"""The next song of a nightly run made ready while the current one runs: downloaded into its folder,
and its cover models' CPU work (Pop2Piano's beats and features) started in their worker.

On a GPU machine that work is most of a warm song's time (4.4-5.4 s of features against 3.3-4.2 s
of generation for a 4-minute song on an H200): started one song ahead, it overlaps the current
song's generation and the stages after it. Nothing here is recorded: the song's own run downloads
it again (finding the files there) and reports any error; a song never covered tonight keeps its
downloaded files for the next night.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from covermill.tasks.core.layout import SongFolder
from covermill.tasks.cover.download import DownloadSettings, download_song
from covermill.tasks.cover.generate import GenerateSettings, prefetch_covers

log = logging.getLogger("covermill.ahead")


def ready_ahead(source: str, out_dir: Path, download: DownloadSettings, generate: GenerateSettings) -> list[str]:
    """Download `source` and start its cover models' prefetch; the generators asked ([] when it failed:
    the song's own run says why)."""
    try:
        song = download_song(source, Path(out_dir), download)
        return prefetch_covers(song, SongFolder(Path(out_dir), song.id), generate)
    except Exception as exc:  # noqa: BLE001 - the song's own run meets the same error and reports it
        log.debug("%s: not made ready ahead (%s)", source, exc)
        return []


class SongAhead:
    """One song made ready in a thread while the caller covers another."""

    def __init__(self, out_dir: Path, download: DownloadSettings, generate: GenerateSettings):
        self.out_dir, self.download, self.generate = Path(out_dir), download, generate
        self.source: str | None = None
        self.asked: list[str] = []
        self._thread: threading.Thread | None = None

    def start(self, source: str) -> None:
        """Begin making `source` ready (after the previous one is done: one song ahead, not more)."""
        self.wait()
        self.source, self.asked = source, []

        def work() -> None:
            self.asked = ready_ahead(source, self.out_dir, self.download, self.generate)

        self._thread = threading.Thread(target=work, name="covermill-song-ahead", daemon=True)
        self._thread.start()

    def wait(self) -> list[str]:
        """Block until the song under way is ready (or failed); the generators that were asked to prefetch."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self.asked
