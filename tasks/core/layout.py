"""The one module that knows the file names inside an output folder; nobody else builds paths."""

from __future__ import annotations

import hashlib
from pathlib import Path


def song_id_for(source_id: str) -> str:
    """A stable folder name from a source's identity: same source, same folder, whatever the title."""
    return hashlib.sha256(source_id.encode("utf-8")).hexdigest()[:16]


def ledger_path(out_dir: Path) -> Path:
    return Path(out_dir) / "ledger.sqlite"


def gallery_index(out_dir: Path) -> Path:
    """The review gallery's index page, across every song of the work folder."""
    return GalleryFolder(out_dir).index


class GalleryFolder:
    """The review gallery, `<out>/gallery/`: the pages and hard-linked copies of the files they show,
    mirroring the work folder's layout (`<song id>/video.mp4`, ...). It is the one folder to serve
    over HTTP: the ledger and the YouTube token stay outside it."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.root = self.out_dir / "gallery"

    @property
    def index(self) -> Path:
        return self.root / "index.html"

    def review_page(self, song_id: str) -> Path:
        return self.root / song_id / "review.html"

    def copy_of(self, path: Path) -> Path:
        """Where the gallery shows a file of the work folder (`path` must lie inside it)."""
        return self.root / Path(path).absolute().relative_to(self.out_dir.absolute())


class SongFolder:
    """Paths of everything one song produces, under `<out>/<song id>/`."""

    def __init__(self, out_dir: Path, song_id: str):
        self.root = Path(out_dir) / song_id

    def original(self, suffix: str) -> Path:
        return self.root / f"original{suffix}"

    def find_original(self) -> Path | None:
        found = sorted(p for p in self.root.glob("original.*") if not p.name.startswith("."))
        return found[0] if found else None

    @property
    def audio(self) -> Path:
        return self.root / "audio.wav"

    @property
    def metadata(self) -> Path:
        return self.root / "metadata.json"

    @property
    def analysis(self) -> Path:
        """The song's beat grid, melody and chords, tracked once (tasks/arrange/analysis.py)."""
        return self.root / "analysis.json"

    def transcription(self, generator: str) -> Path:
        return self.root / "transcriptions" / f"{generator}.mid"

    @property
    def candidates_dir(self) -> Path:
        return self.root / "candidates"

    def candidate_midi(self, candidate_id: str) -> Path:
        return self.candidates_dir / f"{candidate_id}.mid"

    def candidate_audio(self, candidate_id: str) -> Path:
        return self.candidates_dir / f"{candidate_id}.flac"

    def candidate_roll(self, candidate_id: str) -> Path:
        """The candidate's piano-roll picture on the review page (tasks/media/piano_roll.py)."""
        return self.candidates_dir / f"{candidate_id}.png"

    @property
    def ranking(self) -> Path:
        return self.root / "ranking.json"

    @property
    def winner_midi(self) -> Path:
        return self.root / "winner.mid"

    @property
    def winner_audio(self) -> Path:
        return self.root / "winner.flac"

    @property
    def thumbnail(self) -> Path:
        return self.root / "thumbnail.jpg"

    @property
    def thumbnail_info(self) -> Path:
        """Where the thumbnail's picture came from (tasks/media/picture.py's ThumbnailArt)."""
        return self.root / "thumbnail.json"

    @property
    def video(self) -> Path:
        return self.root / "video.mp4"

    @property
    def score_musicxml(self) -> Path:
        """The winner as a piano score to open in MuseScore (tasks/media/score/)."""
        return self.root / "score.musicxml"

    @property
    def score_pdf(self) -> Path:
        """The score engraved by LilyPond."""
        return self.root / "score.pdf"

    @property
    def score_page(self) -> Path:
        """Page 1 of the engraved score as a PNG, for the review page."""
        return self.root / "score.png"

    @property
    def upload_request(self) -> Path:
        """What the upload stage sends for this song (written by every run, dry or not)."""
        return self.root / "upload_request.json"

    @property
    def review_page(self) -> Path:
        """The song's page of the review gallery (in the gallery's own folder)."""
        return GalleryFolder(self.root.parent).review_page(self.root.name)

    @property
    def old_review_page(self) -> Path:
        """Where the page was before the gallery had its own folder (removed when the gallery is written)."""
        return self.root / "review.html"

    @property
    def original_chroma(self) -> Path:
        """The original's HPCP at the native hop (numpy .npy), kept for other songs' identity checks."""
        return self.root / "original_chroma.npy"
