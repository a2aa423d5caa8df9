"""The approval step on a real Prefect server: a song's run pauses with a typed form, and the
answer (sent as the UI sends it) picks another candidate, approves, or rejects; only an approved
cover joins the publishing queue."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path

import pytest

from covermill.flows.config import CovermillConfig
from covermill.flows.cover_song import cover_song, switch_pick
from covermill.tasks.arrange.styles import DEFAULT_STYLES
from covermill.tasks.core.layout import SongFolder, ledger_path
from covermill.tasks.core.ledger import Ledger
from covermill.tasks.publish.queue import waiting

pytestmark = pytest.mark.server


def config() -> CovermillConfig:
    styles = {name: copy.deepcopy(DEFAULT_STYLES[name]) for name in ("two-hands", "ballad", "block-chords")}  # a short run
    return CovermillConfig.model_validate({"arrange": {"styles": styles, "seeds": [0]},
                                           "upload": {"approval": True, "approval_timeout_s": 600}})


class SongRunInThread:
    """cover_song in a thread of this process, as a worker would run it, so the test can answer it."""

    def __init__(self, source: Path, out: Path):
        self.result: dict = {}
        self.thread = threading.Thread(target=lambda: self.result.update(
            state=cover_song(source=str(source), out_dir=str(out), config=config(), dry_run=True, return_state=True)), daemon=True)
        self.thread.start()

    def finished(self, timeout: float = 180):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the run did not finish"
        return self.result["state"]


def paused_run(after: float, timeout: float = 240):
    """The cover_song run that paused for input since `after` (epoch seconds)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state=FlowRunFilterState(
                type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))
            runs = [r for r in runs if r.state.timestamp.timestamp() > after]
            if runs:
                return runs[0]
            time.sleep(1)
    pytest.fail("no run paused for approval")


def answer(run, **run_input) -> float:
    from prefect.flow_runs import resume_flow_run

    asked = time.time()
    resume_flow_run(run.id, run_input=run_input)
    return asked


def queued(out: Path) -> list[str]:
    return [w.song_id for w in waiting(Ledger(ledger_path(out)), out)]


def test_a_person_picks_another_candidate_hears_it_then_approves(prefect_server, clips, tmp_path):
    out = tmp_path / "out"
    started = time.time()
    run = SongRunInThread(clips["song_c"], out)
    paused = paused_run(started)
    (song,) = Ledger(ledger_path(out)).songs()
    folder = SongFolder(out, song.id)
    assert Ledger(ledger_path(out)).stage_state(song.id, "approval")[0] == "running"
    assert queued(out) == []  # not before a person said yes
    ranking = json.loads(folder.ranking.read_text())
    other = next(s["candidate_id"] for s in ranking["scores"][1:] if not s["reject_reason"])

    asked = answer(paused, decision="pick another", candidate=other)
    paused = paused_run(asked)  # asked again, with the new pick rendered to listen to
    assert folder.winner_midi.read_bytes() == folder.candidate_midi(other).read_bytes()
    assert json.loads(folder.ranking.read_text())["pick"] == other
    assert json.loads(folder.metadata.read_text())["winner"]["id"] == other

    answer(paused, decision="approve")
    state = run.finished()
    assert state.is_completed(), state
    assert state.result().pick == other
    ledger = Ledger(ledger_path(out))
    assert ledger.stage_state(song.id, "approval") == ("done", f"approved {other}")
    assert queued(out) == [song.id]
    request = json.loads(folder.upload_request.read_text())
    assert "Arrangement style: " + ranking_style(ledger, song.id, other) in request["request"]["videos.insert"]["body"]["snippet"]["description"]

    # the same cover is not asked about again
    rerun = SongRunInThread(clips["song_c"], out)
    assert rerun.finished(120).is_completed()

    # a switch that dies half way (here: the new pick's render fails) leaves the winner and the video
    # unfinished, so the next run makes them again instead of keeping the old pick's under the new name
    third = next(c for c in ledger.candidates(song.id) if c.id not in (other, ranking["pick"]))
    folder.candidate_midi(third.id).unlink()
    with pytest.raises(FileNotFoundError):
        switch_pick(song, third, ledger.ranking(song.id), folder, ledger, config())
    assert not ledger.is_done(song.id, "winner") and not ledger.is_done(song.id, "video")
    assert ledger.ranking(song.id).pick == third.id


def ranking_style(ledger: Ledger, song_id: str, candidate_id: str) -> str:
    return next(c.style for c in ledger.candidates(song_id) if c.id == candidate_id)


def test_a_rejected_cover_never_joins_the_queue(prefect_server, clips, tmp_path):
    out = tmp_path / "out"
    started = time.time()
    run = SongRunInThread(clips["song_a"], out)
    answer(paused_run(started), decision="reject")
    assert run.finished().is_completed()
    (song,) = Ledger(ledger_path(out)).songs()
    assert Ledger(ledger_path(out)).stage_state(song.id, "approval")[0] == "rejected"
    assert queued(out) == []
