"""Small test utilities shared by several test modules."""

from __future__ import annotations

import functools
import http.server
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def stop(*processes: subprocess.Popen, timeout: float = 30) -> None:
    """Ask long-running child processes (servers, workers) to stop; kill what does not in time."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def http_server(folder: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving `folder`; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def publishable_song(out: Path, name: str, video: Path, thumbnail: Path, combined: float) -> str:
    """A song whose stages ran up to its video, as the cover_song flow leaves it: ledger rows,
    metadata.json and the files the upload stage reads (copies of a real video and thumbnail)."""
    import shutil

    from covermill.tasks.core.atomic import write_json
    from covermill.tasks.core.layout import SongFolder, ledger_path, song_id_for
    from covermill.tasks.core.ledger import DONE, Ledger
    from covermill.tasks.media.metadata import render_metadata
    from covermill.tasks.core.records import Candidate, Publication, Ranking, Score, Song

    song_id = song_id_for(f"test:{name}")
    folder = SongFolder(out, song_id)
    folder.root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(video, folder.video)
    shutil.copyfile(thumbnail, folder.thumbnail)
    song = Song(id=song_id, source=f"https://example.com/{name}.ogg", source_id=f"test:{name}", title=name,
                artist="Planet Blupi", duration=25.0, original=folder.original(".ogg"), audio=folder.audio)
    winner = Candidate(id="basic-pitch-chords", generator="basic-pitch", style="chords", midi=folder.winner_midi)
    score = Score(candidate_id=winner.id, qmax=combined, aligned_share=0.5, frames=100, defects={}, combined=combined)
    title, description = render_metadata(song, winner, score)
    publication = Publication(title=title, description=description, thumbnail=folder.thumbnail, video=folder.video)
    write_json(folder.metadata, {"song": song.model_dump(mode="json"), "winner": winner.model_dump(mode="json"),
                                 "score": score.model_dump(mode="json"), "publication": publication.model_dump(mode="json")})
    ledger = Ledger(ledger_path(out))
    ledger.record_song(song)
    ledger.record_ranking(song_id, Ranking(scores=[score], pick=winner.id))
    for stage in ("download", "generate", "render", "rank", "winner", "thumbnail", "video"):
        ledger.mark(song_id, stage, DONE)
    return song_id
