"""Fingerprints: what decides an output is hashed, how it runs is not; a killed write leaves it unknown."""

from __future__ import annotations

import pytest

from covermill.models.basic_pitch import BasicPitchOptions
from covermill.tasks.core.fingerprints import Fingerprints, fingerprint, outcome, stage_output
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.media.video import VideoSettings
from covermill.tasks.rank.ranking import RankSettings


def test_the_same_parts_give_the_same_fingerprint_whatever_the_key_order():
    assert fingerprint({"a": 1, "b": [1, 2]}, "x") == fingerprint({"b": [1, 2], "a": 1}, "x")
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert fingerprint([1, 2]) != fingerprint([2, 1])  # lists keep their order: a style's steps run in order
    assert len(fingerprint("x")) == 32


def test_fields_that_change_how_a_stage_runs_are_left_out():
    assert "workers" not in outcome(RankSettings()) and "min_notes" in outcome(RankSettings())
    assert fingerprint(RankSettings(workers=1)) == fingerprint(RankSettings(workers=8))
    assert fingerprint(RankSettings(min_notes=3)) != fingerprint(RankSettings())
    assert fingerprint(BasicPitchOptions(threads=1)) == fingerprint(BasicPitchOptions())
    nested = outcome(VideoSettings(falling_notes={"workers": 3}))["falling_notes"]  # inside a nested model too
    assert "workers" not in nested and nested["fall_seconds"] == 3.0


def test_an_output_is_fresh_only_with_its_file_and_its_fingerprint(tmp_path):
    folder = SongFolder(tmp_path, "song")
    fingerprints = Fingerprints.of(folder)
    output = folder.candidate_midi("a")
    output.parent.mkdir(parents=True)
    assert not fingerprints.fresh(output, "one")
    with fingerprints.making(output, "one"):
        output.write_bytes(b"notes")
    assert fingerprints.fresh(output, "one") and not fingerprints.fresh(output, "two")
    assert Fingerprints.of(folder).recorded(output) == "one"  # kept in the ledger, under its path in the folder
    assert fingerprints.recorded("candidates/a.mid") == "one"

    with pytest.raises(RuntimeError), fingerprints.making(output, "two"):  # killed while re-making
        output.write_bytes(b"half")
        raise RuntimeError("killed")
    assert not fingerprints.fresh(output, "one") and not fingerprints.fresh(output, "two")

    output.unlink()
    fingerprints.record(output, "two")
    assert not fingerprints.fresh(output, "two")  # no file, nothing to reuse
    fingerprints.record(stage_output("rank"), "three")
    assert fingerprints.recorded("stage:rank") == "three" and Fingerprints.of(SongFolder(tmp_path, "other")).recorded("stage:rank") is None
