"""The quality bench (bench/quality.py) on real recordings and their scores, and its garbage makers."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from pathlib import Path

import pytest

from covermill.models.notes import Note
from covermill.tasks.core.midi import read_midi
from covermill.tasks.rank.defects import measure_defects
from covermill.tasks.rank.qmax import OriginalChroma
from covermill.tasks.rank.ranking import RankSettings

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import cut_dataset  # noqa: E402
import garbage  # noqa: E402
import quality  # noqa: E402

from conftest import MUSIC_DIR  # noqa: E402


def melody(duration: float = 20.0) -> list[Note]:
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    return [Note(i * 0.5, i * 0.5 + 0.45, scale[i % 8], 80) for i in range(int(duration * 2))]


def test_cut_notes_keeps_the_stretch_and_shifts_it():
    notes = [Note(0.0, 1.0, 60, 80), Note(9.5, 10.5, 62, 80), Note(12.0, 13.0, 64, 80), Note(25.0, 26.0, 65, 80)]
    assert cut_dataset.cut_notes(notes, 10.0, 10.0) == [Note(0.0, 0.5, 62, 80), Note(2.0, 3.0, 64, 80)]


def test_banged_segment_bangs_a_quarter_of_the_song():
    notes = melody()
    banged = garbage.banged_segment(notes, 20.0)
    defects = measure_defects(banged, 20.0)
    assert defects["longest_run_share"] == pytest.approx(0.25, abs=0.02)
    assert all(n in banged for n in notes if not 7.5 <= n.start < 12.5)


def test_dropouts_silence_the_song_for_the_share_asked():
    kept = garbage.dropouts(melody(), 20.0, share=0.4, count=2)
    assert measure_defects(kept, 20.0)["longest_silence"] == pytest.approx(4.0, abs=0.6)
    assert len(kept) == pytest.approx(0.6 * len(melody()), abs=3)


def test_random_pitches_keep_the_rhythm_and_are_reproducible():
    notes = melody()
    changed = garbage.random_pitches(notes, seed=3)
    assert changed == garbage.random_pitches(notes, seed=3)
    assert sorted(n.start for n in changed) == sorted(n.start for n in notes)
    assert 0.3 < sum(a.pitch != b.pitch for a, b in zip(changed, notes)) / len(notes) < 0.7


def test_stretched_spans_the_other_song():
    fitted = garbage.stretched(melody(10.0), 30.0)
    assert max(n.end for n in fitted) == pytest.approx(30.0)
    assert len(fitted) == 20


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """Two 15 s cuts of real recordings with their scores, through the whole bench."""
    dataset = tmp_path_factory.mktemp("dataset")
    music = tmp_path_factory.mktemp("music")
    for name in ("music004", "music007"):
        for suffix in (".ogg", ".mid"):
            (music / f"{name}{suffix}").symlink_to(MUSIC_DIR / f"{name}{suffix}")
    cut_dataset.cut_dataset(music, dataset, start=30.0, seconds=15.0)
    out = tmp_path_factory.mktemp("quality")
    assert quality.main([str(dataset), "--out", str(out), "--workers", "2"]) == 0
    return dataset, out


@pytest.mark.slow
def test_the_bench_writes_a_paper_style_table(bench_run):
    _, out = bench_run
    text = (out / "quality.md").read_text()
    assert "| row | songs | Qmax median | Qmax mean | aligned share median | identified |" in text
    assert "| playable | RGC median | IPE median | WPD median | two hands | note F1 | picked |" in text
    rows = {row["row"]: row for row in csv.DictReader((out / "quality.csv").open())}
    for name in ("pick (ranker)", "oracle (best accepted Qmax)", "score as piano", "control: one note banged",
                 "basic-pitch raw transcription"):
        assert name in rows and rows[name]["songs"] == "2", name
    # the score played on piano is recognisably its own song; the banged control always has the defect
    assert float(rows["score as piano"]["identified"]) == 1.0
    assert float(rows["control: one note banged"]["banging"]) == 1.0
    assert float(rows["pick (ranker)"]["playable"]) == 1.0
    assert float(rows["score as piano"]["qmax_median"]) < float(rows["control: one note banged"]["qmax_median"])
    assert "ranking regret" in text and "garbage injected into the picks" in text
    # fluency beside Qmax for every style and the pick, the published values below them
    for name in ("pick (ranker)", "basic-pitch balanced"):
        assert 0.0 <= float(rows[name]["rgc"]) < 0.5 and 0.0 <= float(rows[name]["wpd"]) < 5.0, name
        assert 3.0 < float(rows[name]["ipe"]) < 10.0 and 0.5 <= float(rows[name]["hands"]) <= 1.0, name
    assert rows["control: one note banged"]["rgc"] == ""  # one interval over and over: no grid to measure
    published = {name: [float(rows[name][c]) for c in ("rgc", "ipe", "wpd", "hands")]
                 for name in ("human covers (Etude)", "Etude", "AMT-APC")}
    assert published == {"human covers (Etude)": [0.042, 10.13, 0.49, 0.993], "Etude": [0.020, 9.02, 0.21, 0.982],
                         "AMT-APC": [0.114, 10.69, 0.09, 0.804]}
    assert rows["Etude"]["qmax_median"] == "" and list(rows)[-3:] == list(published)
    seconds, bits = re.search(r"this set's median (\d+) s would show about ([\d.]+) bits", text).groups()
    assert int(seconds) == 15 and float(bits) == pytest.approx(10.13 + math.log2(15 / 216), abs=0.05)


@pytest.mark.slow
def test_the_bench_scores_with_the_rankers_qmax_at_the_native_hop(bench_run):
    dataset, out = bench_run
    details = json.loads((out / "details" / "music004.json").read_text())
    reference = next(e for e in details["entries"] if e["kind"] == "reference")
    cache = quality.Cache(out / "cache", quality.load_config(None))
    _, audio = cache.audio_for(Path(reference["midi"]))
    native = OriginalChroma.from_file(out / "songs" / "music004" / "audio.wav", max_frames=10**6)
    assert native.factor == 1
    assert native.compare_file(audio).qmax == pytest.approx(reference["qmax"], rel=1e-6)
    assert reference["nearest"] == "music004"
    # the reference is the score: every note of the cut, on the piano
    assert len(read_midi(Path(reference["midi"]))) == len(read_midi(dataset / "music004.mid"))


@pytest.mark.slow
def test_the_bench_injects_garbage_into_each_pick(bench_run):
    _, out = bench_run
    for song in ("music004", "music007"):
        details = json.loads((out / "details" / f"{song}.json").read_text())
        kinds = {g["kind"] for g in details["garbage"]}
        assert kinds == {"banged segment", "dropouts", "random notes", "other song stretched"}
        pick = next(e for e in details["entries"] if e["candidate"] == details["pick"])
        assert pick["defects"]["polyphony"] <= RankSettings().max_polyphony
        assert math.isfinite(pick["qmax"])
        assert set(pick["fluency"]) == {"rgc", "ipe", "wpd", "two_hand_share"} and pick["fluency"]["wpd"] is not None
        scored = next(s for s in details["ranking"]["scores"] if s["candidate_id"] == details["pick"])
        assert scored["fluency"]["ipe"] == pytest.approx(pick["fluency"]["ipe"])  # the ranker's own measure


@pytest.mark.slow
def test_a_rerun_reuses_every_cached_comparison(bench_run, capsys):
    dataset, out = bench_run
    before = json.loads((out / "cache" / "qmax.json").read_text())
    wpds = json.loads((out / "cache" / "wpd.json").read_text())
    assert len(wpds) >= 2 * 4 and all(w is None or w >= 0 for w in wpds.values())  # each entry against its own original
    assert quality.main([str(dataset), "--out", str(out), "--workers", "2", "--no-garbage"]) == 0
    assert json.loads((out / "cache" / "qmax.json").read_text()) == before
    assert json.loads((out / "cache" / "wpd.json").read_text()) == wpds
    err = capsys.readouterr().err
    assert "comparisons at the native hop" not in err and "alignments at the native hop" not in err
