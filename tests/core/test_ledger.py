"""The ledger keeps songs, stage states, candidates and rankings across processes."""

from __future__ import annotations

import math
import multiprocessing
import sqlite3
import subprocess
import sys
from pathlib import Path

from covermill.tasks.core import ledger as ledger_module
from covermill.tasks.core.host import filesystem_type
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


HOLD_A_CLAIM = """
import sys
from covermill.tasks.core.ledger import Ledger
print(Ledger(sys.argv[1]).claim("song1", float(sys.argv[2])), flush=True)
sys.stdin.read()  # hold it until told to go
"""


def other_publisher(path: Path, lease_s: float = 3600.0) -> subprocess.Popen:
    """Another process that claims song1 and keeps running (until its stdin closes)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_CLAIM, str(path), str(lease_s)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "None"  # it got the song
    return holder


def test_a_song_claimed_by_a_live_publisher_is_not_taken(tmp_path):
    path = tmp_path / "ledger.sqlite"
    holder = other_publisher(path)
    try:
        busy = Ledger(path).claim("song1")
        assert busy is not None and f"pid {holder.pid}" in busy
        assert Ledger(path).claim("song2") is None  # other songs are free
        Ledger(path).release("song1")  # not ours: stays held
        assert Ledger(path).claim("song1") is not None
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert Ledger(path).claim("song1") is None  # its process is gone: a dead publisher holds nothing


def test_a_claim_whose_lease_ran_out_is_taken_over(tmp_path):
    path = tmp_path / "ledger.sqlite"
    holder = other_publisher(path, lease_s=0.0)
    try:
        assert Ledger(path).claim("song1") is None
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_the_claimant_claims_again_and_releases(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    assert ledger.claim("song1") is None and ledger.claim("song1") is None
    ledger.release("song1")
    holder = other_publisher(tmp_path / "ledger.sqlite")  # free again: another process gets it
    holder.kill()
    holder.wait(timeout=30)


MOUNTS = """/dev/vda / ext4 rw,relatime 0 0
server:/export /shared nfs4 rw,vers=4.2 0 0
/dev/vdb /shared/local\\040disk ext4 rw 0 0
tmpfs /tmp tmpfs rw 0 0
"""


def test_the_filesystem_of_a_path_is_its_longest_mount():
    assert filesystem_type(Path("/shared/covers/ledger.sqlite"), MOUNTS) == "nfs4"
    assert filesystem_type(Path("/shared/local disk/covers"), MOUNTS) == "ext4"
    assert filesystem_type(Path("/sharedness"), MOUNTS) == "ext4"  # a prefix of the name is not a mount
    assert filesystem_type(Path("/tmp"), MOUNTS) == "tmpfs"


def test_a_ledger_on_a_network_filesystem_uses_the_rollback_journal(tmp_path, monkeypatch):
    assert Ledger(tmp_path / "local" / "ledger.sqlite").journal == "WAL"
    monkeypatch.setattr(ledger_module, "filesystem_type", lambda path: "nfs4")
    shared = Ledger(tmp_path / "shared" / "ledger.sqlite")
    shared.mark("song1", "download", State.DONE)
    with sqlite3.connect(shared.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert shared.is_done("song1", "download")
