"""The chaos bench's short variant (bench/chaos.py): one real song through `covermill nightly
--publish` against the fake YouTube, SIGKILLed while a model holds the `gpu` slot (the command
alone, its children left behind, as the OOM killer does) and between the upload's last chunk and its
answer (its whole process group). Then, as in
the bench: published exactly once, every output decodes, no temporary file, the ledger
consistent, no slot held, and no process of a killed run still running."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import chaos  # noqa: E402

# each command starts Prefect's temporary server, as `covermill nightly` does by default
pytestmark = [pytest.mark.server, pytest.mark.slow]

# two kills keep the test under a minute (each restart starts a temporary Prefect server): the command alone
# while its model holds the slot, and the whole group between YouTube's acting and its answer; the bench
# (bench/chaos.py) draws from every point, the playlist entry's answer among them
PLAN = [("gpu-slot", "main"), ("upload-answer", "group")]


def test_a_nightly_killed_at_its_edges_publishes_once_and_leaves_nothing_behind(tmp_path, tiny_model):
    bench = chaos.Bench(root=tmp_path, playlist=chaos.cut_clips(tmp_path / "playlist", songs=1, seconds=10.0), songs=1,
                        prefect_home=tmp_path / "prefect-home", pop2piano=tiny_model, video_style="still", orphan_grace_s=15.0)
    result = bench.run_pass(PLAN, 0)
    logs = (tmp_path / "pass-01" / "runs.log").read_text()[-3000:]
    assert result.completed, f"{result.failures}\n{logs}"
    assert [(k.point, k.mode) for k in result.kills] == PLAN, logs  # every point was met, in order
    assert result.attempts == len(PLAN) + 1
    check = result.check
    assert (check.published, check.duplicates, check.lost) == (1, 0, [])
    assert check.files_checked >= 15 and check.bad_outputs == {}
    assert check.leftovers == [] and check.ledger_problems == []
    assert check.leaked_slots == 0  # the killed holder's slot was given back by the next run
    assert {k.point: k.orphans for k in result.kills} == {point: {} for point, _ in PLAN}
    assert result.exit_orphans == []
