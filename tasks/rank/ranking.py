"""Rank a song's rendered candidates so that nobody has to listen to the bad ones.

Each candidate gets its Qmax against the original (tasks/rank/qmax.py, lower is closer), its defects
(tasks/rank/defects.py) and its fluency (tasks/rank/fluency.py: RGC, IPE, WPD, two-hand share), all
measured in one pool of processes (tasks/rank/measures.py). A candidate with a disqualifying defect
is rejected with a reason a person can read; the others are ordered by

    combined = qmax * (1 + defect penalties + fluency penalties)                    lower is better
    defect penalties  = run_weight * banging_share + repeat_weight * repeat_share
                      + entropy_weight * max(0, 1 - pitch_class_entropy / entropy_reference)
                      + silence_weight * silent_share
    fluency penalties = rgc_weight * b(rgc - rgc_reference, rgc_scale)
                      + ipe_weight * b(|ipe - human_ipe(song seconds)|, ipe_scale)
                      + wpd_weight * b(|wpd - wpd_reference|, wpd_scale)
                      + hands_weight * b(hands_reference - two_hand_share, hands_scale)
    b(x, scale) = min(1, max(0, x) / scale)
    banging_share = longest_run_share where that run is at least min_run_dominance of the notes
                    struck while it lasts, else 0 (an ostinato the song plays is no banging)
    human_ipe(T) = ipe_reference + log2(T / ipe_reference_seconds)

Each term lies in [0, its weight], so the penalties can at most multiply Qmax by (1 + sum of
weights): they reorder similar candidates without overruling a clearly closer cover. A fluency
measure that is None (too few onsets, silent chroma) adds nothing.

The fluency terms pull towards human covers as Etude (arXiv 2509.16522) measured them on 100 songs
(RGC 0.042, IPE 10.13 bits, WPD 0.49 s; two-hand share 0.993, measured here on the human covers'
MIDI Etude published) and saturate at the distance of AMT-APC, its most transcription-like system
(RGC 0.114, WPD 0.09 s, two-hand share 0.804). A steadier grid or more playable chords than a
human's is never penalised; IPE and WPD are pulled from both sides. IPE is nearly log2 of the
number of onsets (8-grams of 16 IOI clusters seldom repeat), so a candidate is compared with what a
human cover of a song this long shows: 10.13 bits over Etude's songs, 216 s long on average, one
bit less per halving (windows of Etude's human covers: 8.46 bits at 60 s against 8.28 predicted,
9.43 at 120 s against 9.28). WPD weighs least: covermill's candidates keep the original's timing,
so their WPD (0.19-0.42 s on a real song, 60 s and 4 minutes) is mostly alignment noise; another
song's (1.2-9 s) saturates the term.

Identity is a hard floor: an accepted candidate whose Qmax is more than `identity_factor` (1.5)
times the best accepted one's is outside it and ranks after every candidate inside it, whatever
its fluency. Fluency thus only chooses among candidates about as recognisable as the closest one
(AMT-APC's table: human covers 1.09 times AMT-APC's Qmax, Pop2Piano 2.6 times). Rejected candidates
sort last; ties go by candidate id.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, ClassVar

from prefect.artifacts import create_table_artifact
from pydantic import Field

from covermill.models.device import usable_cores
from covermill.tasks.core.atomic import file_sha256, write_json
from covermill.tasks.core.audio import read_mono
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.records import Candidate, Fluency, Ranking, Score, Song
from covermill.tasks.core.run_artifacts import artifact_key, markdown_text
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.stage_task import stage_logger, stage_task
from covermill.tasks.rank.defects import REPEAT_WINDOW_SECONDS, note_name
from covermill.tasks.rank.measures import NoteMeasures, measure_candidates
from covermill.tasks.rank.qmax import PROTOCOL, ChromaMeasures

log = logging.getLogger("covermill.rank")


class RankSettings(Settings):
    # changes how it runs, not what it writes: left out of fingerprints (tasks/core/fingerprints.py)
    RUN_ONLY: ClassVar[frozenset[str]] = frozenset({"workers"})

    workers: int = Field(0, ge=0, description="processes comparing candidates at once; 0 = every usable core")
    max_frames: int = Field(
        2000, ge=50,
        description="chroma frames the original is pooled down to (the same factor pools every candidate): "
                    "2000 compares a clip of up to 90 s at the native hop and a 10-minute song in ~0.3 s and ~20 MB per candidate",
    )
    # hard rejects
    min_notes: int = Field(16, ge=0, description="reject a candidate with fewer notes than this")
    min_two_hand_share: float = Field(
        1.0, ge=0.0, le=1.0,
        description="reject a candidate when a smaller share of its chords can be struck by two hands (five keys within "
                    "14 semitones each): a cover a pianist cannot play is no piano cover; 0 turns the check off")
    max_run_share: float = Field(0.3, gt=0.0, le=1.0, description="reject when one pitch is re-struck without pause over more than this share of the song (note banging)")
    min_run_dominance: float = Field(
        0.5, ge=0.0, le=1.0,
        description="...and its strikes are at least this share of the notes struck meanwhile: a banged stretch is all of "
                    "them (a drone's sparse cover 0.97), while an ostinato or pedal point the song itself plays under a tune "
                    "and chords was 0.15-0.20 on the bench's tuning songs (their faithful covers were rejected and a worse "
                    "style picked); 0 = any long run")
    max_repeat_share: float = Field(0.95, gt=0.0, le=1.0, description="reject when more than this share of notes repeat a pitch struck within the last 0.5 s")
    min_pitch_class_entropy: float = Field(1.0, ge=0.0, le=math.log2(12), description="reject below this many bits of duration-weighted pitch-class entropy (0 = one pitch class)")
    max_silent_share: float = Field(0.8, gt=0.0, le=1.0, description="reject when no note sounds for more than this share of the song")
    max_notes_per_second: float = Field(40.0, gt=0.0, description="reject denser candidates: no pianist plays that, it renders as noise")
    max_polyphony: int = Field(10, ge=1, description="reject a candidate with more notes sounding at once than this (two hands hold ten keys)")
    # combined score: combined = qmax * (1 + the weighted penalties below)
    run_weight: float = Field(2.0, ge=0.0, description="penalty weight of longest_run_share (0..1)")
    repeat_weight: float = Field(0.1, ge=0.0, description="penalty weight of repeat_share (0..1); real music repeats pitches too, and a dense transcription re-strikes held notes, so keep it small")
    entropy_weight: float = Field(1.0, ge=0.0, description="penalty weight of max(0, 1 - pitch_class_entropy / entropy_reference)")
    entropy_reference: float = Field(2.0, gt=0.0, le=math.log2(12), description="pitch-class entropy in bits at and above which no entropy penalty applies")
    silence_weight: float = Field(0.25, ge=0.0, description="penalty weight of silent_share (0..1); Qmax already counts silent frames, so keep it small")
    # fluency: terms of the combined score pulling towards human covers (references: Etude's human covers;
    # scales: how far AMT-APC, the most transcription-like system, sits from them)
    identity_factor: float = Field(
        1.5, ge=1.0,
        description="the identity floor: an accepted candidate whose Qmax exceeds this many times the best accepted one's "
                    "ranks after every candidate within it, whatever its fluency (human covers: 1.09x AMT-APC's Qmax)",
    )
    rgc_weight: float = Field(0.3, ge=0.0, description="penalty weight of an RGC (rhythmic grid consistency) above rgc_reference")
    rgc_reference: float = Field(0.042, ge=0.0, description="human covers' RGC; a steadier grid is not penalised")
    rgc_scale: float = Field(0.072, gt=0.0, description="RGC excess at which the term is full (AMT-APC's 0.114 - 0.042)")
    ipe_weight: float = Field(0.2, ge=0.0, description="penalty weight of IPE's (IOI pattern entropy) distance from a human cover's")
    ipe_reference: float = Field(10.13, gt=0.0, description="human covers' IPE in bits, over songs of ipe_reference_seconds")
    ipe_reference_seconds: float = Field(
        216.0, gt=0.0,
        description="mean length of the songs ipe_reference was measured on; IPE grows by one bit per doubling of a song's length",
    )
    ipe_scale: float = Field(2.0, gt=0.0, description="bits from the human value at which the term is full (4x or 1/4 the onsets)")
    wpd_weight: float = Field(0.1, ge=0.0, description="penalty weight of WPD's (warping-path deviation) distance from human covers'")
    wpd_reference: float = Field(0.49, ge=0.0, description="human covers' WPD, seconds")
    wpd_scale: float = Field(0.4, gt=0.0, description="seconds from wpd_reference at which the term is full (AMT-APC: 0.09 s)")
    hands_weight: float = Field(0.3, ge=0.0, description="penalty weight of a two-hand share below hands_reference")
    hands_reference: float = Field(0.993, ge=0.0, le=1.0, description="human covers' share of onset groups two hands can strike")
    hands_scale: float = Field(0.189, gt=0.0, le=1.0, description="shortfall at which the term is full (AMT-APC's 0.804 = 0.993 - 0.189)")


def reject_reasons(defects: dict[str, float], qmax: float, settings: RankSettings) -> list[str]:
    """Why a candidate cannot be published, as phrases a person understands; empty when it can."""
    reasons = []
    notes = int(defects["notes"])
    if notes == 0:
        return ["it has no notes at all"]
    if notes < settings.min_notes:
        reasons.append(f"only {notes} notes (at least {settings.min_notes} needed)")
    if banging_share(defects, settings) > settings.max_run_share:
        reasons.append(
            f"one note struck {int(defects['longest_run'])} times in a row "
            f"({note_name(int(defects['longest_run_pitch']))}, {defects['longest_run_share']:.0%} of the song)"
        )
    if defects["repeat_share"] > settings.max_repeat_share:
        reasons.append(f"{defects['repeat_share']:.0%} of its notes repeat a pitch struck less than {REPEAT_WINDOW_SECONDS:g} s before")
    if defects["pitch_class_entropy"] < settings.min_pitch_class_entropy:
        reasons.append(
            f"hardly any harmony ({defects['pitch_class_entropy']:.1f} bits of pitch-class variety, "
            f"at least {settings.min_pitch_class_entropy:.1f} needed)"
        )
    if defects["silent_share"] > settings.max_silent_share:
        reasons.append(f"silent for {defects['silent_share']:.0%} of the song")
    if defects["notes_per_second"] > settings.max_notes_per_second:
        reasons.append(f"{defects['notes_per_second']:.0f} notes a second (at most {settings.max_notes_per_second:g} playable)")
    if defects["polyphony"] > settings.max_polyphony:
        reasons.append(f"{int(defects['polyphony'])} notes sound at once (at most {settings.max_polyphony} playable)")
    if defects["outside_piano"] > 0:
        reasons.append(f"{int(defects['outside_piano'])} notes lie beyond the piano's keys (A0 to C8)")
    if math.isinf(qmax):
        reasons.append("nothing in it lines up with the original (Qmax is infinite)")
    return reasons


def banging_share(defects: dict[str, float], settings: RankSettings) -> float:
    """The part of the song the longest run of one pitch spans, when it dominates what is struck
    meanwhile (min_run_dominance); 0 for an ostinato under other music. Defects measured before
    the dominance was (an older ranking.json) count every run, as they did then."""
    dominance = defects.get("longest_run_dominance", 1.0)
    return defects["longest_run_share"] if dominance >= settings.min_run_dominance else 0.0


def defect_penalty(defects: dict[str, float], settings: RankSettings) -> float:
    """The weighted defect terms of the combined score (see the module docstring)."""
    entropy_deficit = max(0.0, 1.0 - defects["pitch_class_entropy"] / settings.entropy_reference)
    return (
        settings.run_weight * banging_share(defects, settings)
        + settings.repeat_weight * defects["repeat_share"]
        + settings.entropy_weight * entropy_deficit
        + settings.silence_weight * defects["silent_share"]
    )


def human_ipe(seconds: float, settings: RankSettings) -> float:
    """The IPE, bits, of a human cover of a song this long: ipe_reference at ipe_reference_seconds,
    one bit less per halving."""
    return settings.ipe_reference + math.log2(max(seconds, 1.0) / settings.ipe_reference_seconds)


def _bounded(excess: float, scale: float) -> float:
    return min(1.0, max(0.0, excess) / scale)


def fluency_terms(fluency: Fluency | None, seconds: float, settings: RankSettings) -> dict[str, float]:
    """Each fluency term of the combined score, in [0, its weight], for a song of `seconds`; a
    measure that is None gives no term."""
    if fluency is None:
        return {}
    s = settings
    terms = {"hands": s.hands_weight * _bounded(s.hands_reference - fluency.two_hand_share, s.hands_scale)}
    if fluency.rgc is not None:
        terms["rgc"] = s.rgc_weight * _bounded(fluency.rgc - s.rgc_reference, s.rgc_scale)
    if fluency.ipe is not None:
        terms["ipe"] = s.ipe_weight * _bounded(abs(fluency.ipe - human_ipe(seconds, s)), s.ipe_scale)
    if fluency.wpd is not None:
        terms["wpd"] = s.wpd_weight * _bounded(abs(fluency.wpd - s.wpd_reference), s.wpd_scale)
    return terms


def combined_score(qmax: float, defects: dict[str, float], settings: RankSettings, fluency: Fluency | None = None,
                   seconds: float | None = None) -> float:
    """Qmax scaled up by the weighted defect and fluency penalties (see the module docstring) for a
    song of `seconds` (default: ipe_reference_seconds); lower is better."""
    if math.isinf(qmax) or math.isnan(qmax):
        return math.inf
    song = settings.ipe_reference_seconds if seconds is None else seconds
    return qmax * (1.0 + defect_penalty(defects, settings) + sum(fluency_terms(fluency, song, settings).values()))


def _order(score: Score) -> tuple[bool, bool, float, str]:
    return (score.rejected, score.outside_floor, score.combined, score.candidate_id)


def unplayable_reason(two_hand_share: float, defects: dict[str, float], settings: RankSettings) -> str | None:
    """Why a candidate is no piano cover: chords beyond two hands (a hard reject below min_two_hand_share)."""
    if defects.get("notes", 0) == 0 or two_hand_share >= settings.min_two_hand_share:
        return None
    return f"{1 - two_hand_share:.1%} of its chords are more than two hands can strike (five keys within 14 semitones each)"


def apply_identity_floor(scores: list[Score], factor: float) -> list[Score]:
    """The scores in ranking order, each accepted one marked outside the floor when its Qmax exceeds
    `factor` times the best accepted Qmax: inside first, then outside, then the rejected, each
    by combined score."""
    best = min((s.qmax for s in scores if not s.rejected), default=math.inf)
    marked = [s.model_copy(update={"outside_floor": not s.rejected and s.qmax > factor * best}) for s in scores]
    return sorted(marked, key=_order)


def _score(candidate: Candidate, chroma: ChromaMeasures, notes: NoteMeasures, seconds: float, settings: RankSettings) -> Score:
    fluency = Fluency(rgc=notes.rgc, ipe=notes.ipe, wpd=chroma.wpd, two_hand_share=notes.two_hand_share)
    reasons = reject_reasons(notes.defects, chroma.result.qmax, settings)
    unplayable = unplayable_reason(fluency.two_hand_share, notes.defects, settings)
    if unplayable:
        reasons.append(unplayable)
    return Score(
        candidate_id=candidate.id,
        qmax=chroma.result.qmax,
        aligned_share=chroma.result.aligned_share,
        frames=chroma.result.frames,
        defects=notes.defects,
        combined=combined_score(chroma.result.qmax, notes.defects, settings, fluency, seconds),
        reject_reason="; ".join(reasons) if reasons else None,
        fluency=fluency,
    )


def rank_candidates(original_audio: Path, candidates: list[Candidate], audio: dict[str, Path], settings: RankSettings) -> Ranking:
    """Score every candidate against the original; best first, rejected last, pick the best accepted."""
    missing = [c.id for c in candidates if c.id not in audio]
    if missing:
        raise ValueError(f"no rendered audio for candidates {missing}")
    samples = read_mono(Path(original_audio), PROTOCOL.sample_rate)
    seconds = len(samples) / PROTOCOL.sample_rate
    # identical renders (candidates with the same notes) are compared once and score alike
    digests = [file_sha256(audio[c.id]) for c in candidates]
    unique: dict[str, Path] = {}
    for digest, candidate in zip(digests, candidates):
        unique.setdefault(digest, audio[candidate.id])
    original, chroma, notes = measure_candidates(samples, list(unique.values()), [c.midi for c in candidates], seconds,
                                                 settings.max_frames, settings.workers or usable_cores())
    del samples  # 100 MB for a 10-minute song; nothing below needs it
    log.debug("original: %d chroma frames pooled by %d", original.native_frames, original.factor)
    compared = dict(zip(unique, chroma))
    scores = [_score(c, compared[digest], measured, seconds, settings) for c, digest, measured in zip(candidates, digests, notes)]
    scores = apply_identity_floor(scores, settings.identity_factor)
    pick = next((s.candidate_id for s in scores if not s.rejected), None)
    return Ranking(scores=scores, pick=pick)


def write_ranking(path: Path, ranking: Ranking) -> Path:
    """ranking.json, atomically; an infinite Qmax is written as the string "Infinity" (standard JSON
    that browsers parse, and that Ranking.model_validate reads back as inf)."""
    return write_json(Path(path), ranking.model_dump(mode="json"))


def _number(value: float | None, digits: int = 4) -> float | str:
    if value is None:
        return ""
    return "inf" if math.isinf(value) else round(float(value), digits)


def _verdict(score: Score, pick: str | None) -> str:
    if score.candidate_id == pick:
        return "pick"
    return f"rejected: {score.reject_reason}" if score.rejected else "ok"


def _fluency_cells(fluency: Fluency | None) -> dict[str, float | str]:
    if fluency is None:  # a ranking made before fluency was measured
        return {"rgc": "", "ipe": "", "wpd": "", "two hands": ""}
    return {"rgc": _number(fluency.rgc, 3), "ipe": _number(fluency.ipe, 2), "wpd": _number(fluency.wpd, 2),
            "two hands": f"{fluency.two_hand_share:.1%}"}


def ranking_table(ranking: Ranking, candidates: list[Candidate]) -> list[dict[str, Any]]:
    """One row per candidate in ranking order, for a Prefect table artifact."""
    by_id = {c.id: c for c in candidates}
    rows = []
    for place, score in enumerate(ranking.scores, start=1):
        candidate = by_id.get(score.candidate_id)
        rows.append({
            "rank": place,
            "candidate": score.candidate_id,
            "generator": candidate.generator if candidate else "",
            "style": candidate.style if candidate else "",
            "arranger": candidate.arranger if candidate and candidate.arranger is not None else "",
            "seed": candidate.seed if candidate and candidate.seed is not None else "",
            "qmax": _number(score.qmax),
            "aligned": f"{score.aligned_share:.0%}",
            "combined": _number(score.combined),
            "notes": int(score.defects.get("notes", 0)),
            "longest run": int(score.defects.get("longest_run", 0)),
            **_fluency_cells(score.fluency),
            "identity floor": "" if score.rejected else ("outside" if score.outside_floor else "inside"),
            "verdict": _verdict(score, ranking.pick),
        })
    return rows


@stage_task("rank")
def rank(song: Song, candidates: list[Candidate], audio: dict[str, Path], out_dir: Path, settings: RankSettings) -> Ranking:
    """Rank the song's candidates, write ranking.json and publish the table as a Prefect artifact."""
    ranking = rank_candidates(song.audio, candidates, audio, settings)
    write_ranking(SongFolder(out_dir, song.id).ranking, ranking)
    accepted = sum(not s.rejected for s in ranking.scores)
    create_table_artifact(
        key=artifact_key("ranking", song.id),
        table=ranking_table(ranking, candidates),
        description=f"Candidates of {markdown_text(repr(song.title))}, best first: Qmax against the original (lower is closer), "
                    f"combined with defect and fluency penalties (RGC, IPE, WPD, two hands; human covers 0.042, "
                    f"10.13 bits over 216 s, 0.49 s, 99%); {accepted} of {len(ranking.scores)} accepted.",
    )
    logger = stage_logger("rank")
    if ranking.pick is None:
        logger.warning("rank: all %d candidates rejected", len(ranking.scores))
    else:
        best = ranking.scores[0]
        logger.info("rank: picked %s (Qmax %.3f, combined %.3f), %d of %d accepted",
                    ranking.pick, best.qmax, best.combined, accepted, len(ranking.scores))
    return ranking
