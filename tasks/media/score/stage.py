"""Score stage: the winner's MIDI as a piano score beside the video (score.musicxml, score.pdf, score.png).

The notes are written on the song's bars: the beat grid, meter and key of its analysis.json (the
grid the arrangement followed), else the MIDI's own tempo map, else a steady 120 BPM. The flow
never lets this stage fail a song: a failure is recorded in the ledger with its reason.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from covermill.tasks.arrange.analysis import SongAnalysis, load_analysis
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import read_piece
from covermill.tasks.core.music import BeatGrid, Piece
from covermill.tasks.core.records import Song
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.stage_task import stage_logger, stage_task
from covermill.tasks.media.score.engrave import engrave
from covermill.tasks.media.score.notation import ARRANGER, notate


class ScoreSettings(Settings):
    enabled: bool = True  # read by the flow: false makes no score
    pdf: bool = True  # engrave the PDF (and page 1 as PNG) with LilyPond; false: MusicXML only
    paper: Literal["a4", "letter"] = "a4"
    page_dpi: int = Field(110, ge=30, le=600)  # page 1's PNG on the review page (110 dpi: 910 px wide on A4)
    # LilyPond engraved a dense 4-minute cover in 9 s on 2 cores; a stuck engraver is stopped here
    timeout_s: float = Field(600.0, gt=0)


def score_grid(piece: Piece, analysis: SongAnalysis | None) -> BeatGrid:
    """The bars the score is written on: the song's analysed grid, else the MIDI's, else 120 BPM."""
    if analysis is not None:
        return analysis.grid
    if piece.grid is not None:
        return piece.grid
    return BeatGrid.fixed(max((n.end for n in piece.notes), default=1.0))


def make_score(song: Song, out_dir: Path, settings: ScoreSettings) -> Path:
    """score.musicxml from winner.mid, then (settings.pdf) score.pdf and score.png; the MusicXML's path.

    An engraving failure is raised after the MusicXML is written (one sentence), so the flow keeps
    the MusicXML and records why there is no PDF."""
    folder = SongFolder(out_dir, song.id)
    log = stage_logger("score")
    for stale in (folder.score_pdf, folder.score_page):  # an old pick's pages never sit beside a new score
        stale.unlink(missing_ok=True)
    if not folder.winner_midi.is_file():
        raise CovermillError(f"{folder.winner_midi}: no winner MIDI to write the score from; run the song again.")
    piece = read_piece(folder.winner_midi)
    analysis = load_analysis(folder.analysis)
    from covermill.tasks.media.score.musicxml import write_musicxml  # music21: 0.16 s to import, paid when a score is written

    started = time.perf_counter()
    notation = notate(piece.notes, score_grid(piece, analysis), key=analysis.key if analysis else "")
    write_musicxml(notation, folder.score_musicxml, song.title, song.artist)
    log.info("score: %d bars of MusicXML in %.1f s", len(notation.bars), time.perf_counter() - started)
    if settings.pdf:
        started = time.perf_counter()
        pages = engrave(folder.score_musicxml, folder.score_pdf, folder.score_page, song.title, song.artist,
                        f"arr. {ARRANGER}", settings.paper, settings.page_dpi, settings.timeout_s)
        log.info("score: %d pages engraved in %.1f s", pages, time.perf_counter() - started)
    return folder.score_musicxml


make_score_task = stage_task("score")(make_score)
