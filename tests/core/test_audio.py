"""Audio in: a file is read as the file it is, whatever its name looks like to FFmpeg."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from covermill.tasks.core.audio import decode_to_wav, probe, read_mono


@pytest.mark.parametrize("name", ["-x.ogg", "concat:a.ogg"])
def test_a_name_ffmpeg_would_take_for_an_option_or_a_protocol_is_still_the_file(short_clips, tmp_path, monkeypatch, name):
    shutil.copy(short_clips["song_a"], tmp_path / name)
    monkeypatch.chdir(tmp_path)
    info = probe(Path(name))  # given relatively, as a user types it
    assert info.codec == "vorbis" and 9.0 < info.duration < 11.0
    samples = read_mono(decode_to_wav(Path(name), tmp_path / "out.wav"))
    assert abs(len(samples) / 44100 - info.duration) < 0.1
