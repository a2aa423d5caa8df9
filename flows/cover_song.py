"""cover_song: one song from source to a local video, then (unless a dry run) today's publishing queue.

download -> generate -> render -> rank -> winner -> thumbnail -> video -> score -> metadata -> publish.
Every stage is a Prefect task over pure functions; the ledger marks each finished stage with the
fingerprint of what it was made from (flows/song_fingerprints.py), so a re-run skips what is done
and current, a run killed half way resumes where it stopped, and a changed setting re-makes what
depends on it and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from prefect import flow, get_run_logger

from covermill.flows.approval import ask, choice_problem
from covermill.flows.config import CovermillConfig
from covermill.flows.publish import publish
from covermill.flows.review import show_song
from covermill.flows.song_fingerprints import (
    generate_fingerprint,
    identity_fingerprint,
    pick_fingerprint,
    rank_fingerprint,
    render_fingerprint,
    score_fingerprint,
    thumbnail_fingerprint,
    video_fingerprint,
)
from covermill.tasks.core.atomic import write_json
from covermill.tasks.core.errors import EveryCandidateRejected
from covermill.tasks.core.fingerprints import Fingerprints, stage_output
from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import APPROVAL_STAGE, IDENTITY_STAGE, Ledger, State
from covermill.tasks.core.leftovers import remove_leftovers
from covermill.tasks.core.records import Candidate, CoverResult, Generated, Publication, Ranking, Song
from covermill.tasks.cover.download import download
from covermill.tasks.cover.generate import generate_candidates
from covermill.tasks.cover.render import render_candidates, render_winner_task
from covermill.tasks.media.gallery import published_link
from covermill.tasks.media.metadata import render_metadata
from covermill.tasks.media.score.stage import make_score_task
from covermill.tasks.media.thumbnail import make_thumbnail_task
from covermill.tasks.media.video import make_video_task
from covermill.tasks.rank.identity import check_identity
from covermill.tasks.rank.ranking import rank, write_ranking

T = TypeVar("T")


class SongRun:
    """The ledger's view of one song during a run: skip what is done and current, record what finishes."""

    def __init__(self, ledger: Ledger, song: Song, folder: SongFolder):
        self.ledger = ledger
        self.song = song
        self.fingerprints = Fingerprints(ledger, folder)
        self.logger = get_run_logger()

    def current(self, name: str, made_with: str) -> bool:
        """Whether the ledger says the stage is done, made with the fingerprint `made_with`."""
        return self.ledger.is_done(self.song.id, name) and self.fingerprints.recorded(stage_output(name)) == made_with

    def run_stage(self, name: str, made_with: str, finished: Callable[[], T | None], run: Callable[[], T],
                  record: Callable[[T], None] = lambda _: None) -> T:
        """Reuse the stage's result when it is current and `finished()` finds its outputs; else run
        it, and record `made_with` once it has finished."""
        if self.current(name, made_with):
            previous = finished()
            if previous is not None:
                self.logger.info("%s: already done, skipped", name)
                return previous
        elif self.ledger.is_done(self.song.id, name):
            self.logger.info("%s: made with other settings or inputs; made again", name)
        self.fingerprints.forget(stage_output(name))
        self.ledger.mark(self.song.id, name, State.RUNNING)
        started = time.perf_counter()
        try:
            result = run()
        except Exception as exc:
            self.ledger.mark(self.song.id, name, State.FAILED, str(exc))
            raise
        record(result)
        self.fingerprints.record(stage_output(name), made_with)
        self.ledger.mark(self.song.id, name, State.DONE, seconds=time.perf_counter() - started)
        return result


def _candidates_on_disk(ledger: Ledger, song_id: str) -> Generated | None:
    found = ledger.candidates(song_id)
    return Generated(candidates=found) if found and all(c.midi.exists() for c in found) else None


def _audio_on_disk(folder: SongFolder, candidates: list[Candidate]) -> dict[str, Path] | None:
    audio = {c.id: folder.candidate_audio(c.id) for c in candidates}
    return audio if all(p.exists() for p in audio.values()) else None


def _existing(path: Path) -> Path | None:
    return path if path.exists() else None


def identity_gate(run: SongRun, winner: Candidate, folder: SongFolder, config: CovermillConfig) -> str | None:
    """The recognisability gate (tasks/rank/identity.py) on the pick; the reason when it holds the
    song back from the queue, None when it lets it through (or is off). Checked once per pick."""
    if not config.identity.enabled:
        return None
    ledger, song = run.ledger, run.song
    found = ledger.stage_state(song.id, IDENTITY_STAGE)
    made_with = identity_fingerprint(winner, config)
    if found is not None and found[0] in (State.DONE, State.HELD) and run.fingerprints.recorded(stage_output(IDENTITY_STAGE)) == made_with:
        return found[1] if found[0] == State.HELD else None
    started = time.perf_counter()
    run.fingerprints.forget(stage_output(IDENTITY_STAGE))
    verdict = check_identity(song, folder.candidate_audio(winner.id), folder.root.parent, ledger.songs(), config.identity)
    ledger.mark(song.id, IDENTITY_STAGE, State.HELD if verdict.held else State.DONE, verdict.reason,
                seconds=time.perf_counter() - started)
    run.fingerprints.record(stage_output(IDENTITY_STAGE), made_with)
    run.logger.info("identity: %s", verdict.reason)
    return verdict.reason if verdict.held else None


def score_stage(run: SongRun, winner: Candidate, folder: SongFolder, config: CovermillConfig) -> None:
    """The score (tasks/media/score/): never fails the song. A failure is the stage's state and reason
    in the ledger (the MusicXML is kept when only the PDF failed); score.enabled: false skips it."""
    song = run.song
    if not config.score.enabled:
        run.fingerprints.forget(stage_output("score"))
        run.ledger.mark(song.id, "score", State.SKIPPED, "score.enabled is false")
        return
    def made() -> Path | None:
        return folder.score_musicxml if folder.score_musicxml.exists() and (folder.score_pdf.exists() or not config.score.pdf) else None

    try:
        run.run_stage("score", score_fingerprint(song, winner, config), made,
                      lambda: make_score_task(song, folder.root.parent, config.score))
    except Exception as exc:  # noqa: BLE001 - sheet music is never worth a song: run_stage recorded the reason
        run.logger.warning("score: %s; the song goes on without it", exc)


def write_publication(song: Song, winner: Candidate, ranking: Ranking, thumbnail: Path, video: Path,
                      folder: SongFolder, config: CovermillConfig) -> Publication:
    """metadata.json: the song, its pick, the pick's score, and the title and description to publish
    (the description may link the sheet music where the gallery is served)."""
    score = next(s for s in ranking.scores if s.candidate_id == winner.id)
    out, base_url = folder.root.parent, config.gallery.base_url if config.gallery.enabled else None
    sheet_music = {"pdf": published_link(folder.score_pdf, out, base_url), "musicxml": published_link(folder.score_musicxml, out, base_url)}
    title, description = render_metadata(song, winner, score, config.metadata, sheet_music)
    publication = Publication(title=title, description=description, thumbnail=thumbnail, video=video)
    write_json(folder.metadata, {
        "song": song.model_dump(mode="json"),
        "winner": winner.model_dump(mode="json"),
        "score": score.model_dump(mode="json"),
        "publication": publication.model_dump(mode="json"),
    })
    return publication


def switch_pick(song: Song, winner: Candidate, ranking: Ranking, folder: SongFolder, ledger: Ledger,
                config: CovermillConfig) -> Ranking:
    """Make `winner` the pick: the ranking, the winner's render, the video and metadata.json.

    The winner and video stages are marked unfinished first and finished last: a run killed in
    between finds them unfinished and makes them again from the new pick, rather than keeping the
    old pick's render and video under the new pick's name."""
    fingerprints = Fingerprints(ledger, folder)
    for stage in ("winner", "video"):
        ledger.mark(song.id, stage, State.RUNNING, f"switching the pick to {winner.id}")
        fingerprints.forget(stage_output(stage))
    ranking = ranking.model_copy(update={"pick": winner.id})
    write_ranking(folder.ranking, ranking)
    ledger.record_ranking(song.id, ranking)
    out = folder.root.parent
    render_winner_task(song, winner, out, config.render)
    fingerprints.record(stage_output("winner"), pick_fingerprint(winner, config))
    ledger.mark(song.id, "winner", State.DONE, f"picked by a person: {winner.id}")
    video = make_video_task(song, out, config.video)
    fingerprints.record(stage_output("video"), video_fingerprint(song, winner, config))
    ledger.mark(song.id, "video", State.DONE)
    score_stage(SongRun(ledger, song, folder), winner, folder, config)
    write_publication(song, winner, ranking, folder.thumbnail, video, folder, config)
    return ranking


def approval(song: Song, ranking: Ranking, candidates: list[Candidate], winner: Candidate, folder: SongFolder,
             ledger: Ledger, config: CovermillConfig) -> tuple[Candidate, bool]:
    """Ask a person (flows/approval.py) until they approve or reject; (the final pick, approved)."""
    logger = get_run_logger()
    out = folder.root.parent
    fingerprints = Fingerprints(ledger, folder)
    while True:
        ledger.mark(song.id, APPROVAL_STAGE, State.RUNNING, "waiting for a person in the Prefect UI")
        show_song(song, out, config)  # the review page to listen on is current
        decision = ask(song, winner, ranking, str(folder.review_page), config.upload.approval_timeout_s)
        if decision is None:
            logger.warning("nobody answered within %d s; the song stays out of the queue until a run of it is approved",
                           config.upload.approval_timeout_s)
            return winner, False
        if decision.decision in ("reject", "approve"):  # an answer about this cover: asked again only when it changes
            fingerprints.record(stage_output(APPROVAL_STAGE), pick_fingerprint(winner, config))
        if decision.decision == "reject":
            ledger.mark(song.id, APPROVAL_STAGE, State.REJECTED, f"rejected by a person (pick was {winner.id})")
            return winner, False
        if decision.decision == "approve":
            ledger.mark(song.id, APPROVAL_STAGE, State.DONE, f"approved {winner.id}")
            return winner, True
        problem = choice_problem(decision, ranking)
        if problem:
            logger.warning("%s", problem)
            continue
        # another candidate: it becomes the pick, its cover is rendered, and the person hears it next
        winner = next(c for c in candidates if c.id == decision.candidate)
        ranking = switch_pick(song, winner, ranking, folder, ledger, config)
        logger.info("the pick is now %s, picked by a person", winner.id)


@flow(name="cover_song", log_prints=True)
def cover_song(source: str, out_dir: str = "out", config: CovermillConfig | None = None, dry_run: bool = True,
               publish_queue: bool = True) -> CoverResult:
    """Make, rank and publish a piano cover of one song (a local audio file or an http(s) URL).

    `dry_run` stops at the local video and writes upload_request.json; otherwise today's queue is
    published (this song when its score and the day's budget allow). `publish_queue` False leaves
    the queue to the caller, which runs it once after all its songs (`covermill run`, the nightly)."""
    config = config or CovermillConfig()
    out = Path(out_dir)
    ledger = Ledger(ledger_path(out))
    logger = get_run_logger()

    started = time.perf_counter()
    song = download(source, out, config.download)
    ledger.record_song(song)
    ledger.mark(song.id, "download", State.DONE, seconds=time.perf_counter() - started)
    folder = SongFolder(out, song.id)
    removed = remove_leftovers(folder.root, folder.review_page.parent)  # a killed run's temporary files
    if removed:
        logger.info("removed %d temporary files a killed run left behind", len(removed))
    run = SongRun(ledger, song, folder)

    generated: Generated = run.run_stage(
        "generate",
        generate_fingerprint(song, config),
        lambda: _candidates_on_disk(ledger, song.id),
        lambda: generate_candidates(song, out, config.generate, config.arrange, config.gpu),
        lambda found: ledger.record_generated(song.id, found, config.generate.generators),
    )
    candidates = generated.candidates
    rendered = render_fingerprint(candidates, config)  # hashes every candidate's MIDI: once, for render and rank
    audio = run.run_stage(
        "render",
        rendered,
        lambda: _audio_on_disk(folder, candidates),
        lambda: render_candidates(song, candidates, out, config.render),
    )
    ranking: Ranking = run.run_stage(
        "rank",
        rank_fingerprint(song, rendered, config),
        lambda: ledger.ranking(song.id) if folder.ranking.exists() else None,
        lambda: rank(song, candidates, audio, out, config.rank),
        lambda found: ledger.record_ranking(song.id, found),
    )
    if ranking.pick is None:
        ledger.mark(song.id, "winner", State.FAILED, "every candidate was rejected")
        raise EveryCandidateRejected(f"{source}: every candidate was rejected by the ranking; see {folder.ranking} for the reasons.")
    winner = next(c for c in candidates if c.id == ranking.pick)

    run.run_stage(
        "winner",
        pick_fingerprint(winner, config),
        lambda: folder.winner_audio if folder.winner_audio.exists() and folder.winner_midi.exists() else None,
        lambda: render_winner_task(song, winner, out, config.render),
    )
    held = identity_gate(run, winner, folder, config)
    thumbnail = run.run_stage(
        "thumbnail",
        thumbnail_fingerprint(song, config),
        lambda: _existing(folder.thumbnail),
        lambda: make_thumbnail_task(song, out, config.thumbnail, config.gpu),
        lambda _: ledger.record_thumbnail_art(song.id, folder.thumbnail_info),
    )
    video = run.run_stage("video", video_fingerprint(song, winner, config), lambda: _existing(folder.video),
                          lambda: make_video_task(song, out, config.video))
    score_stage(run, winner, folder, config)
    write_publication(song, winner, ranking, thumbnail, video, folder, config)
    logger.info("winner: %s", winner.id)

    approved = True
    answered = ledger.stage_state(song.id, APPROVAL_STAGE)
    same_cover = run.fingerprints.recorded(stage_output(APPROVAL_STAGE)) == pick_fingerprint(winner, config)
    if config.upload.approval:
        if answered is not None and answered[0] in (State.DONE, State.REJECTED) and same_cover:
            approved = answered[0] == State.DONE  # the same cover was answered before: not asked again
        else:
            winner, approved = approval(song, ranking, candidates, winner, folder, ledger, config)
    elif held is not None:
        approved = answered is not None and answered[0] == State.DONE and same_cover
        if not approved:
            logger.warning("held back from the publishing queue: %s (`covermill approve %s` queues it anyway)", held, song.id)
    # The song joins the queue; publish sends what today's budget allows, best first (maybe
    # another song), and in a dry run writes the requests it would send.
    published = publish(out_dir=out_dir, config=config, dry_run=dry_run).published if approved and publish_queue else {}
    show_song(song, out, config)
    return CoverResult(song_id=song.id, title=song.title, folder=folder.root, video=video, winner_midi=folder.winner_midi,
                       ranking=folder.ranking, review_page=folder.review_page, pick=winner.id, candidates=len(candidates),
                       approved=approved, published=published.get(song.id))
