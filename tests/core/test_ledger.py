"""The ledger keeps songs, stage states, candidates and rankings across processes."""

from __future__ import annotations

import math
import multiprocessing
from pathlib import Path

from covermill.tasks.core.ledger import Ledger, State
from covermill.tasks.core.records import Candidate, Ranking, Score, Song


def _song(song_id: str = "abc123") -> Song:
    return Song(id=song_id, source="/music/x.ogg", source_id="file:deadbeef", title="Tïtle", artist="",
                duration=12.5, original=Path("/out/abc123/original.ogg"), audio=Path("/out/abc123/audio.wav"))


def _mark_from_another_process(path: str) -> None:
    Ledger(Path(path)).mark("abc123", "render", State.DONE)


def test_records_survive_reopening_and_other_processes(tmp_path):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    ledger.record_song(_song())
    ledger.mark("abc123", "download", State.DONE)
    ledger.mark("abc123", "generate", State.RUNNING)
    candidates = [Candidate(id=f"basic-pitch-{s}", generator="basic-pitch", style=s, midi=Path(f"/m/{s}.mid"), note_count=3)
                  for s in ("faithful", "folded")]
    ledger.record_candidates("abc123", candidates)
    ranking = Ranking(
        scores=[Score(candidate_id="basic-pitch-folded", qmax=0.2, aligned_share=0.1, frames=100, defects={"nps": 4.0}, combined=0.2),
                Score(candidate_id="basic-pitch-faithful", qmax=math.inf, aligned_share=0.0, frames=100, defects={}, combined=math.inf,
                      reject_reason="nothing aligns")],
        pick="basic-pitch-folded",
    )
    ledger.record_ranking("abc123", ranking)

    process = multiprocessing.get_context("spawn").Process(target=_mark_from_another_process, args=(str(path),))
    process.start()
    process.join(60)
    assert process.exitcode == 0

    reopened = Ledger(path)
    assert reopened.song("abc123") == _song()
    assert reopened.song("nope") is None
    assert reopened.stages("abc123") == {"download": State.DONE, "generate": State.RUNNING, "render": State.DONE}
    assert reopened.is_done("abc123", "download") and not reopened.is_done("abc123", "generate")
    assert reopened.candidates("abc123") == candidates
    assert reopened.ranking("abc123") == ranking
    assert reopened.ranking("abc123").scores[1].rejected


def test_marking_again_replaces_state_and_detail(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.mark("s", "rank", State.FAILED, "essentia crashed")
    assert ledger.stage_state("s", "rank") == (State.FAILED, "essentia crashed")
    ledger.mark("s", "rank", State.DONE)
    assert ledger.stage_state("s", "rank") == (State.DONE, "")
    ledger.record_candidates("s", [])
    assert ledger.candidates("s") == []
