"""bench/gpu.sh, the one command for a bare GPU machine, run here on the CPU with tiny random
models; and the generate bench's cut for machines without ffmpeg."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import generate  # noqa: E402

from conftest import MUSIC_DIR  # noqa: E402


@pytest.mark.slow  # two bench processes, ~20 s on 2 cores
def test_gpu_bench_runs_both_benches_and_writes_one_json(tmp_path):
    out = tmp_path / "figures" / "gpu.json"
    env = {**os.environ, "PYTHON": sys.executable, "GPU_BENCH_WHEELS": str(tmp_path / "no-wheels")}
    done = subprocess.run([str(BENCH / "gpu.sh"), str(MUSIC_DIR / "music004.ogg"), "--device", "cpu", "--tiny",
                           "--seconds", "10", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["failed"] == [] and figures["song"] == "music004.ogg"
    assert figures["machine"]["torch"] and figures["machine"]["gpu"] is None

    pop2piano = figures["pop2piano"]
    assert pop2piano["covers"] == 42 and pop2piano["songs_run"] == 2  # all arrangers x seeds 0, 1; two songs
    assert pop2piano["same_notes_every_song"] is True
    assert pop2piano["sequences"] == 42 * pop2piano["segments"] and 9 <= pop2piano["song_seconds"] <= 10
    first, following = pop2piano["first"], pop2piano["next"]
    assert first.keys() == following.keys() == set(generate.PER_SONG)
    assert pop2piano["songs"][0] == first and pop2piano["songs"][1] == following  # the next song's mean is the second's
    for song in (first, following):
        assert all(song[key] > 0 for key in ("features_s", "generate_s", "decode_s", "total_s", "calls"))
    assert first["warmup_s"] > 0 and following["warmup_s"] == 0  # only the first song of the process warms up
    # as in the pipeline, each song's features were made in the worker ahead of its generate
    assert pop2piano["prefetch"] is True and first["features_prefetched"] is True and following["features_prefetched"] is True

    painter = figures["stable_diffusion"]
    assert painter["images"] == 1 and painter["steps"] == 2 and painter["size"] == "64x64"
    assert painter["s_per_image"] > 0 and painter["s_per_step"] > 0
    assert "pop2piano, 42 covers of 10 s" in done.stdout and "stable diffusion, 64x64, 2 steps" in done.stdout


def test_without_ffmpeg_the_song_is_cut_with_soundfile(tmp_path):
    song = MUSIC_DIR / "music004.ogg"
    cut = generate.cut_with_soundfile(song, 3.0, tmp_path / "song.wav")
    info = soundfile.info(str(cut))
    assert (info.samplerate, info.channels, info.frames) == (44100, 2, 3 * 44100)

    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-t", "3", "-i", str(song), "-ar", "44100",
                    str(tmp_path / "ffmpeg.wav")], check=True)
    by_ffmpeg, _ = soundfile.read(str(tmp_path / "ffmpeg.wav"), dtype="float32")
    by_soundfile, _ = soundfile.read(str(cut), dtype="float32")
    assert by_ffmpeg.shape == by_soundfile.shape
    assert np.abs(by_ffmpeg - by_soundfile).max() < 1e-3  # the same music: two Vorbis decoders, 16-bit WAVs
