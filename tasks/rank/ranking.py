"""Rank a song's rendered candidates so that nobody has to listen to the bad ones.

Each candidate gets its Qmax against the original (tasks/rank/qmax.py, lower is closer) and its
defects (tasks/rank/defects.py). A candidate with a disqualifying defect is rejected with a reason a
person can read; the others are ordered by

    combined = qmax * (1 + run_weight * longest_run_share
                         + repeat_weight * repeat_share
                         + entropy_weight * max(0, 1 - pitch_class_entropy / entropy_reference)
                         + silence_weight * silent_share)

lower is better. Each penalty term lies in [0, weight], so the defects can at most multiply Qmax
by (1 + sum of weights): they break near-ties between similar candidates without overruling
a clearly closer cover. Rejected candidates sort after the accepted ones; ties go by candidate id.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from prefect.artifacts import create_table_artifact
from pydantic import Field

from covermill.models.device import usable_cores
from covermill.tasks.core.atomic import file_sha256, write_json
from covermill.tasks.core.audio import read_mono
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import read_midi
from covermill.tasks.core.records import Candidate, Ranking, Score, Song
from covermill.tasks.core.run_artifacts import artifact_key
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.stage_task import stage_logger, stage_task
from covermill.tasks.rank.defects import REPEAT_WINDOW_SECONDS, measure_defects, note_name
from covermill.tasks.rank.qmax import PROTOCOL, compare_all

log = logging.getLogger("covermill.rank")


class RankSettings(Settings):
    workers: int = Field(0, ge=0, description="processes comparing candidates at once; 0 = every usable core")
    max_frames: int = Field(
        2000, ge=50,
        description="chroma frames the original is pooled down to (the same factor pools every candidate): "
                    "2000 compares a clip of up to 90 s at the native hop and a 10-minute song in ~0.3 s and ~20 MB per candidate",
    )
    # hard rejects
    min_notes: int = Field(16, ge=0, description="reject a candidate with fewer notes than this")
    max_run_share: float = Field(0.3, gt=0.0, le=1.0, description="reject when one pitch is re-struck without pause over more than this share of the song (note banging)")
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


def reject_reasons(defects: dict[str, float], qmax: float, settings: RankSettings) -> list[str]:
    """Why a candidate cannot be published, as phrases a person understands; empty when it can."""
    reasons = []
    notes = int(defects["notes"])
    if notes == 0:
        return ["it has no notes at all"]
    if notes < settings.min_notes:
        reasons.append(f"only {notes} notes (at least {settings.min_notes} needed)")
    if defects["longest_run_share"] > settings.max_run_share:
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


def combined_score(qmax: float, defects: dict[str, float], settings: RankSettings) -> float:
    """Qmax scaled up by the weighted defect penalties (see the module docstring); lower is better."""
    if math.isinf(qmax) or math.isnan(qmax):
        return math.inf
    entropy_deficit = max(0.0, 1.0 - defects["pitch_class_entropy"] / settings.entropy_reference)
    penalty = (
        settings.run_weight * defects["longest_run_share"]
        + settings.repeat_weight * defects["repeat_share"]
        + settings.entropy_weight * entropy_deficit
        + settings.silence_weight * defects["silent_share"]
    )
    return qmax * (1.0 + penalty)


def _order(score: Score) -> tuple[bool, float, str]:
    return (score.rejected, score.combined, score.candidate_id)


def rank_candidates(original_audio: Path, candidates: list[Candidate], audio: dict[str, Path], settings: RankSettings) -> Ranking:
    """Score every candidate against the original; best first, rejected last, pick the best accepted."""
    missing = [c.id for c in candidates if c.id not in audio]
    if missing:
        raise ValueError(f"no rendered audio for candidates {missing}")
    samples = read_mono(Path(original_audio), PROTOCOL.sample_rate)
    duration = len(samples) / PROTOCOL.sample_rate
    # identical renders (candidates with the same notes) are compared once and score alike
    digests = [file_sha256(audio[c.id]) for c in candidates]
    unique: dict[str, Path] = {}
    for digest, candidate in zip(digests, candidates):
        unique.setdefault(digest, audio[candidate.id])
    original, qmaxes = compare_all(samples, list(unique.values()), settings.max_frames, settings.workers or usable_cores())
    del samples  # 100 MB for a 10-minute song; nothing below needs it
    log.debug("original: %d chroma frames pooled by %d", original.native_frames, original.factor)
    compared = dict(zip(unique, qmaxes))
    results = [compared[digest] for digest in digests]
    scores = []
    for candidate, result in zip(candidates, results):
        defects = measure_defects(read_midi(candidate.midi), duration)
        reasons = reject_reasons(defects, result.qmax, settings)
        scores.append(Score(
            candidate_id=candidate.id,
            qmax=result.qmax,
            aligned_share=result.aligned_share,
            frames=result.frames,
            defects=defects,
            combined=combined_score(result.qmax, defects, settings),
            reject_reason="; ".join(reasons) if reasons else None,
        ))
    scores.sort(key=_order)
    pick = next((s.candidate_id for s in scores if not s.rejected), None)
    return Ranking(scores=scores, pick=pick)


def write_ranking(path: Path, ranking: Ranking) -> Path:
    """ranking.json, atomically; an infinite Qmax is written as the string "Infinity" (standard JSON
    that browsers parse, and that Ranking.model_validate reads back as inf)."""
    return write_json(Path(path), ranking.model_dump(mode="json"))


def _number(value: float, digits: int = 4) -> float | str:
    return "inf" if math.isinf(value) else round(float(value), digits)


def ranking_table(ranking: Ranking, candidates: list[Candidate]) -> list[dict[str, Any]]:
    """One row per candidate in ranking order, for a Prefect table artifact."""
    by_id = {c.id: c for c in candidates}
    rows = []
    for place, score in enumerate(ranking.scores, start=1):
        candidate = by_id.get(score.candidate_id)
        if score.candidate_id == ranking.pick:
            verdict = "pick"
        elif score.rejected:
            verdict = f"rejected: {score.reject_reason}"
        else:
            verdict = "ok"
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
            "verdict": verdict,
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
        description=f"Candidates of {song.title!r}, best first: Qmax against the original (lower is closer), "
                    f"combined with defect penalties; {accepted} of {len(ranking.scores)} accepted.",
    )
    logger = stage_logger("rank")
    if ranking.pick is None:
        logger.warning("rank: all %d candidates rejected", len(ranking.scores))
    else:
        best = ranking.scores[0]
        logger.info("rank: picked %s (Qmax %.3f, combined %.3f), %d of %d accepted",
                    ranking.pick, best.qmax, best.combined, accepted, len(ranking.scores))
    return ranking
