"""Prefect artifacts: what a person sees of a song's run in the Prefect UI.

The ranking table (tasks/rank/ranking.py), a progress bar while candidates are made, and links to the
song's thumbnail, video, MIDI and review page. Links point at the gallery's copies under `base_url`
when the gallery folder is served over HTTP (gallery.base_url), else at the files themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from prefect.artifacts import create_link_artifact, create_progress_artifact, update_progress_artifact

from covermill.tasks.core.layout import GalleryFolder, SongFolder
from covermill.tasks.core.records import Song

MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def markdown_text(text: object) -> str:
    """`text` as literal text inside Markdown (the Prefect UI renders artifacts and their
    descriptions): a song title `[x](javascript:..)` or `<script>` shows as typed, never as a link
    or HTML; control characters become spaces."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", CONTROL.sub(" ", str(text)))


def artifact_key(kind: str, song_id: str) -> str:
    """Prefect artifact keys allow only lowercase letters, digits and dashes."""
    return f"{kind}-" + (re.sub(r"[^a-z0-9-]+", "-", song_id.lower()).strip("-") or "song")


def progress_bar(kind: str, song: Song, description: str) -> Callable[[float], None]:
    """A progress artifact at 0 %; the returned function moves it (fraction 0..1)."""
    artifact_id = create_progress_artifact(0.0, key=artifact_key(kind, song.id), description=markdown_text(description))

    def move(fraction: float) -> None:
        update_progress_artifact(artifact_id, round(100 * min(max(fraction, 0.0), 1.0), 1))

    return move


def file_link(path: Path, out_dir: Path, base_url: str | None) -> str:
    """The served gallery's URL of a work-folder (or gallery) file when there is a base_url and the
    gallery shows the file; else the file itself."""
    gallery = GalleryFolder(out_dir)
    path = Path(path).absolute()
    shown = path if path.is_relative_to(gallery.root.absolute()) else gallery.copy_of(path)
    if base_url and shown.is_file():
        return base_url.rstrip("/") + "/" + shown.relative_to(gallery.root.absolute()).as_posix()
    return path.resolve().as_uri()


def link_song_files(song: Song, out_dir: Path, base_url: str | None, extra: dict[str, Path] | None = None) -> None:
    """One link artifact per published-to-be file of the song (the ones that exist)."""
    folder = SongFolder(out_dir, song.id)
    files = {"thumbnail": folder.thumbnail, "video": folder.video, "midi": folder.winner_midi, **(extra or {})}
    for kind, path in files.items():
        if Path(path).exists():
            create_link_artifact(link=file_link(path, out_dir, base_url), link_text=markdown_text(f"{song.title}: {Path(path).name}"),
                                 key=artifact_key(kind, song.id), description=markdown_text(f"The {kind} of {song.title!r}."))
