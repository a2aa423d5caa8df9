"""The review gallery: static HTML pages in the output folder, what a person looks at.

`<out>/index.html` lists every song in the ledger, newest first; `<out>/<song id>/review.html`
shows one song: thumbnail and video, players for the original, the winner and the top candidates,
the full score table with each candidate's piano roll, player and reasons, each generator's
outcome, the stages and the upload status.

The gallery has its own folder, `<out>/gallery/` (core/layout.py's GalleryFolder): the pages and
hard links to the files they show (a copy where the filesystem has no hard links), in the work
folder's layout. Serving that folder exposes nothing else: the ledger, the YouTube token and the
working files stay outside it. Every link is relative, so the folder can be opened from disk,
copied, or served by any static server. The pages hold no script and load nothing from elsewhere;
titles come from the internet, so the templates autoescape and a Content-Security-Policy forbids
scripts should one slip through.
"""

from __future__ import annotations

import functools
import math
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from pydantic import Field

from covermill.tasks.core.atomic import link_atomic, write_text
from covermill.tasks.core.layout import GalleryFolder, SongFolder, gallery_index, ledger_path
from covermill.tasks.core.ledger import APPROVAL_STAGE, GENERATOR_STAGE, IDENTITY_STAGE, THUMBNAIL_ART_STAGE, Ledger, State
from covermill.tasks.core.records import Candidate, Fluency, Ranking, Score, Song
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.urls import is_url
from covermill.tasks.media.piano_roll import fresh_piano_roll

# The cover_song flow's order; the upload stage is written by publish.
FLOW_STAGES = ("download", "generate", "render", "rank", "winner", IDENTITY_STAGE, "thumbnail", THUMBNAIL_ART_STAGE, "video",
               "score", APPROVAL_STAGE, "upload")
# Containers every current browser decodes; anything else (m4a from some sites, wma...) is played
# from audio.wav, the decoded working copy every song has.
BROWSER_AUDIO = {".flac", ".mp3", ".ogg", ".oga", ".opus", ".wav", ".webm", ".weba"}


class GallerySettings(Settings):
    enabled: bool = True  # read by the flow: false writes no pages
    top_candidates: int = Field(5, ge=0, description="players for the best-ranked candidates on a song's page (the winner and the original always have one)")
    base_url: str | None = None  # where <out>/gallery is served over HTTP, if it is: the Prefect UI's links use it


def index_path(out_dir: Path) -> Path:
    return gallery_index(out_dir)


def song_page_path(out_dir: Path, song_id: str) -> Path:
    return SongFolder(out_dir, song_id).review_page


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    # core/templating.py's environment is plain text on purpose; HTML needs escaping everywhere.
    return jinja2.Environment(
        loader=jinja2.PackageLoader("covermill.templates", "."),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _href(target: Path, page_dir: Path) -> str:
    """A relative URL from a page to a file; quoted, so no name can read as a scheme or a query."""
    return quote(Path(os.path.relpath(target, page_dir)).as_posix())


def show_in_gallery(target: Path, out_dir: Path) -> Path:
    """The gallery's copy of a work-folder file, made or refreshed (core/atomic.py's link_atomic). A
    file replaced since (stages write atomically, so a new file is a new inode) is linked again."""
    copy = GalleryFolder(out_dir).copy_of(target)
    try:
        if copy.exists() and os.path.samefile(copy, target):
            return copy
    except OSError:
        pass
    return link_atomic(target, copy)


def _link(target: Path | None, out_dir: Path, page_dir: Path) -> str | None:
    """A relative URL from a page to the gallery's copy of a work-folder file; None when the file is missing."""
    if target is None or not Path(target).is_file():
        return None
    return _href(show_in_gallery(Path(target), out_dir), page_dir)


def published_link(target: Path, out_dir: Path, base_url: str | None) -> str:
    """The web address of a work-folder file in the gallery served at `base_url` (its gallery copy
    made now, so the address works once the gallery is served); "" without a base_url or the file."""
    if not base_url or not Path(target).is_file():
        return ""
    copy = show_in_gallery(Path(target), out_dir).absolute()
    return base_url.rstrip("/") + "/" + quote(copy.relative_to(GalleryFolder(out_dir).root.absolute()).as_posix())


# An absolute local path in a reason or a source ("/home/ann/Music/x.ogg: no such file"): the pages
# show its last part only, so a served gallery does not tell the machine's layout. A URL's path
# (after "//host") is left alone.
LOCAL_PATH = re.compile(r"(?<![\w:/.~-])(?:~|/)[^\s:;,'\"()<>]*/([^\s:;,'\"()<>/]+)")


def without_paths(text: str) -> str:
    """`text` with every absolute local path cut to its file name."""
    return LOCAL_PATH.sub(r"\1", text)


def _number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return ""
    if math.isinf(value):
        return "\u221e"
    return "" if math.isnan(value) else f"{value:.{digits}f}"


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}:{rest:02d}"


def _defects(defects: dict[str, float]) -> str:
    """The defect measures a reviewer weighs, in one short line (tasks/rank/defects.py has them all)."""
    if not defects:
        return ""
    parts = [f"{int(defects.get('notes', 0))} notes"]
    if "notes_per_second" in defects:
        parts.append(f"{defects['notes_per_second']:.1f}/s")
    if defects.get("longest_run", 0) > 1:
        parts.append(f"run {int(defects['longest_run'])} ({defects.get('longest_run_share', 0):.0%})")
    if "repeat_share" in defects:
        parts.append(f"repeats {defects['repeat_share']:.0%}")
    if "pitch_class_entropy" in defects:
        parts.append(f"{defects['pitch_class_entropy']:.1f} bits")
    if defects.get("silent_share", 0) > 0:
        parts.append(f"silent {defects['silent_share']:.0%}")
    if "polyphony" in defects:
        parts.append(f"polyphony {int(defects['polyphony'])}")
    if defects.get("outside_piano", 0) > 0:
        parts.append(f"{int(defects['outside_piano'])} off the keys")
    return ", ".join(parts)


def _stage_rows(ledger: Ledger, song_id: str) -> list[dict[str, Any]]:
    """Every stage but the per-generator rows (shown on their own), in the flow's order."""
    states = ledger.stages(song_id)
    seconds = ledger.stage_seconds(song_id)
    names = [n for n in FLOW_STAGES if n in states]
    names += sorted(n for n in states if n not in FLOW_STAGES and not n.startswith(GENERATOR_STAGE))
    rows = []
    for name in names:
        state, detail = ledger.stage_state(song_id, name) or (states[name], "")
        rows.append({"name": name, "state": state, "detail": without_paths(detail),
                     "seconds": f"{seconds[name]:.1f} s" if name in seconds else ""})
    return rows


def _upload_status(ledger: Ledger, song_id: str, states: dict[str, str]) -> dict[str, Any] | None:
    """Where the song stands with YouTube; None while it has no video yet."""
    upload = ledger.upload(song_id)
    if upload is not None and upload.video_id:
        when = f", scheduled for {upload.publish_at}" if upload.publish_at else ""
        return {"kind": "published", "text": f"on YouTube{when}", "url": f"https://youtu.be/{quote(upload.video_id, safe='')}"}
    if states.get("upload") == State.FAILED:
        detail = without_paths((ledger.stage_state(song_id, "upload") or ("", ""))[1])
        return {"kind": "failed", "text": f"upload failed: {detail}" if detail else "upload failed", "url": None}
    if states.get("video") != State.DONE:
        return None
    if upload is not None:
        return {"kind": "queued", "text": "upload started, resumes on the next run", "url": None}
    held = ledger.stage_state(song_id, IDENTITY_STAGE)
    if held is not None and held[0] == State.HELD and states.get(APPROVAL_STAGE) != State.DONE:
        return {"kind": "held", "url": None,
                "text": f"held back from publishing: {held[1]} (`covermill approve {song_id}` lets it into the queue)"}
    return {"kind": "queued", "text": "waiting in the queue", "url": None}


def song_status(ledger: Ledger, song_id: str) -> dict[str, Any]:
    """One line for the index: the first failed stage and why, else how far publishing got.

    A song whose candidates were all rejected is settled, not failed: the ranking says why."""
    ranking = ledger.ranking(song_id)
    if ranking is not None and ranking.scores and ranking.pick is None:
        return {"kind": "rejected", "text": f"rejected: none of its {len(ranking.scores)} candidates passed the ranking", "url": None}
    states = ledger.stages(song_id)
    rows = _stage_rows(ledger, song_id)
    # the upload has its own status below; a score that failed leaves the song whole (its row says why)
    failed = next((r for r in rows if r["state"] == State.FAILED and r["name"] not in ("upload", "score")), None)
    if failed is not None:
        reason = f": {failed['detail']}" if failed["detail"] else ""
        return {"kind": "failed", "text": f"failed at {failed['name']}{reason}", "url": None}
    upload = _upload_status(ledger, song_id, states)
    if upload is not None:
        return upload
    running = next((r["name"] for r in rows if r["state"] == State.RUNNING), None)
    return {"kind": "running", "text": f"unfinished: {running}" if running else "in progress", "url": None}


def _pick_score(ranking: Ranking | None) -> Score | None:
    if ranking is None or ranking.pick is None:
        return None
    return next((s for s in ranking.scores if s.candidate_id == ranking.pick), None)


def _original_player(folder: SongFolder, out_dir: Path, page_dir: Path) -> dict[str, Any] | None:
    original = folder.find_original()
    if original is not None and original.suffix.lower() in BROWSER_AUDIO:
        return {"label": "original", "note": original.name, "src": _link(original, out_dir, page_dir)}
    if folder.audio.is_file():
        return {"label": "original", "note": "decoded working copy", "src": _link(folder.audio, out_dir, page_dir)}
    return None


def _verdict(score: Score, pick: str | None) -> str:
    if score.candidate_id == pick:
        return "pick"
    if score.rejected:
        return f"rejected: {without_paths(score.reject_reason or '')}"
    return "outside the identity floor: far less similar than the closest" if score.outside_floor else ""


def _fluency(fluency: Fluency | None) -> dict[str, str]:
    """RGC, IPE, WPD and the two-hand share as the score table shows them; blank where not measured."""
    if fluency is None:  # a ranking made before fluency was measured
        return {"rgc": "", "ipe": "", "wpd": "", "hands": ""}
    return {"rgc": _number(fluency.rgc), "ipe": _number(fluency.ipe, 2), "wpd": _number(fluency.wpd, 2),
            "hands": f"{fluency.two_hand_share:.1%}"}


def _score_rows(ranking: Ranking | None, candidates: dict[str, Candidate], folder: SongFolder, out_dir: Path,
                page_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for place, score in enumerate(ranking.scores if ranking else [], start=1):
        candidate = candidates.get(score.candidate_id)
        rows.append({
            "rank": place,
            "candidate": score.candidate_id,
            "midi": _link(folder.candidate_midi(score.candidate_id), out_dir, page_dir),
            "audio": _link(folder.candidate_audio(score.candidate_id), out_dir, page_dir),
            "roll": _link(fresh_piano_roll(folder.candidate_midi(score.candidate_id), folder.candidate_roll(score.candidate_id)),
                          out_dir, page_dir),
            "generator": candidate.generator if candidate else "",
            "style": candidate.style if candidate else "",
            "arranger": "" if candidate is None or candidate.arranger is None else candidate.arranger,
            "seed": "" if candidate is None or candidate.seed is None else candidate.seed,
            "qmax": _number(score.qmax),
            "aligned": f"{score.aligned_share:.1%}",
            "defects": _defects(score.defects),
            **_fluency(score.fluency),
            "combined": _number(score.combined),
            "verdict": _verdict(score, ranking.pick if ranking else None),
            "pick": ranking is not None and score.candidate_id == ranking.pick,
            "rejected": score.rejected,
        })
    return rows


def _players(folder: SongFolder, ranking: Ranking | None, rows: list[dict[str, Any]], top: int, out_dir: Path,
             page_dir: Path) -> list[dict[str, Any]]:
    players = []
    original = _original_player(folder, out_dir, page_dir)
    if original is not None:
        players.append(original)
    winner = _link(folder.winner_audio, out_dir, page_dir)
    if winner is not None and ranking is not None and ranking.pick:
        players.append({"label": "winner", "note": ranking.pick, "src": winner})
    for row in [r for r in rows if r["audio"]][:top]:
        note = f"combined {row['combined']}" + (f", {row['verdict']}" if row["verdict"] else "")
        players.append({"label": f"#{row['rank']} {row['candidate']}", "note": note, "src": row["audio"]})
    return players


def _summary(out_dir: Path, ledger: Ledger, song: Song, page_dir: Path) -> dict[str, Any]:
    """What the index and the song's own page both show."""
    folder = SongFolder(out_dir, song.id)
    ranking = ledger.ranking(song.id)
    pick = _pick_score(ranking)
    return {
        "id": song.id,
        "title": song.title or "(untitled)",
        "artist": song.artist,
        "duration": _duration(song.duration) if song.duration > 0 else "",
        "source_url": song.source if is_url(song.source) else "",  # a local path is private
        "thumbnail": _link(folder.thumbnail, out_dir, page_dir),
        "page": _href(song_page_path(out_dir, song.id), page_dir),
        "pick": ranking.pick if ranking else None,
        "combined": _number(pick.combined) if pick else "",
        "qmax": _number(pick.qmax) if pick else "",
        "status": song_status(ledger, song.id),
    }


def _score_sheet(folder: SongFolder, out_dir: Path, page_dir: Path) -> dict[str, str | None] | None:
    """Links to the score's page 1, PDF and MusicXML; None when the song has no score."""
    links = {"page": _link(folder.score_page, out_dir, page_dir), "pdf": _link(folder.score_pdf, out_dir, page_dir),
             "musicxml": _link(folder.score_musicxml, out_dir, page_dir)}
    return links if links["musicxml"] else None


def song_context(out_dir: Path, ledger: Ledger, song_id: str, settings: GallerySettings) -> dict[str, Any]:
    """Everything one song's page shows, with links relative to that page."""
    song = ledger.song(song_id)
    if song is None:
        raise ValueError(f"song {song_id} is not in the ledger {ledger.path}")
    folder = SongFolder(out_dir, song_id)
    page_dir = song_page_path(out_dir, song_id).parent
    ranking = ledger.ranking(song_id)
    candidates = {c.id: c for c in ledger.candidates(song_id)}
    rows = _score_rows(ranking, candidates, folder, out_dir, page_dir)
    states = ledger.stages(song_id)
    outcomes = ledger.generator_outcomes(song_id)
    return {
        "song": _summary(out_dir, ledger, song, page_dir),
        "index": _href(index_path(out_dir), page_dir),
        "video": _link(folder.video, out_dir, page_dir),
        "winner_midi": _link(folder.winner_midi, out_dir, page_dir),
        "score_sheet": _score_sheet(folder, out_dir, page_dir),
        "ranking_file": _link(folder.ranking, out_dir, page_dir),
        "players": _players(folder, ranking, rows, settings.top_candidates, out_dir, page_dir),
        "scores": rows,
        "accepted": sum(not r["rejected"] for r in rows),
        "generators": [{"name": name, "state": state, "reason": without_paths(reason)} for name, (state, reason) in sorted(outcomes.items())],
        "stages": _stage_rows(ledger, song_id),
        "upload": _upload_status(ledger, song_id, states),
    }


def write_song_page(out_dir: Path, ledger: Ledger, song_id: str, settings: GallerySettings | None = None) -> Path:
    """`<out>/<song id>/review.html`, atomically; returns its path."""
    context = song_context(Path(out_dir), ledger, song_id, settings or GallerySettings())
    html = _environment().get_template("gallery_song.html.j2").render(**context)
    SongFolder(out_dir, song_id).old_review_page.unlink(missing_ok=True)
    return write_text(song_page_path(out_dir, song_id), html)


def write_gallery(out_dir: Path, settings: GallerySettings | None = None) -> Path:
    """Every song's page and `<out>/index.html` (newest song first); returns the index's path."""
    out_dir = Path(out_dir)
    settings = settings or GallerySettings()
    ledger = Ledger(ledger_path(out_dir))
    songs = list(reversed(ledger.songs()))  # the ledger lists them oldest first
    for song in songs:
        write_song_page(out_dir, ledger, song.id, settings)
    entries = [_summary(out_dir, ledger, song, GalleryFolder(out_dir).root) for song in songs]
    # playlist entries that never became a song (the download failed): only the nightly's archive knows them
    known = {song.id for song in songs}
    unfinished = [{"source": source if is_url(source) else Path(source).name, "reason": without_paths(detail), "attempts": attempts}
                  for source, song_id, state, detail, attempts in ledger.entries()
                  if state == State.FAILED and song_id not in known]
    html = _environment().get_template("gallery_index.html.j2").render(songs=entries, unfinished=unfinished)
    (out_dir / "index.html").unlink(missing_ok=True)  # where the index was before the gallery had its own folder
    return write_text(index_path(out_dir), html)
