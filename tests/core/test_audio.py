"""Audio in: a file is read as the file it is, whatever its name looks like to FFmpeg."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from covermill.tasks.core import audio
from covermill.tasks.core.audio import decode_to_wav, probe, read_mono
from covermill.tasks.core.errors import CovermillError


@pytest.mark.parametrize("name", ["-x.ogg", "concat:a.ogg"])
def test_a_name_ffmpeg_would_take_for_an_option_or_a_protocol_is_still_the_file(short_clips, tmp_path, monkeypatch, name):
    shutil.copy(short_clips["song_a"], tmp_path / name)
    monkeypatch.chdir(tmp_path)
    info = probe(Path(name))  # given relatively, as a user types it
    assert info.codec == "vorbis" and 9.0 < info.duration < 11.0
    samples = read_mono(decode_to_wav(Path(name), tmp_path / "out.wav"))
    assert abs(len(samples) / 44100 - info.duration) < 0.1


def test_a_decoder_that_never_gets_its_bytes_is_stopped_with_one_sentence(tmp_path, monkeypatch):
    pipe = tmp_path / "stalled.ogg"
    os.mkfifo(pipe)  # nothing ever writes: FFmpeg waits for its first byte forever
    monkeypatch.setattr(audio, "DECODE_TIMEOUT_S", 1.0)
    started = time.monotonic()
    with pytest.raises(CovermillError, match=r"stalled.ogg: ffmpeg did not finish within 1 s; check that the file is complete"):
        decode_to_wav(pipe, tmp_path / "out.wav")
    assert time.monotonic() - started < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stalled.ogg"]  # no half-written output left


def test_what_is_not_audio_is_one_sentence(tmp_path):
    text = tmp_path / "song.mp3"
    text.write_text("not audio at all\n")
    with pytest.raises(CovermillError, match=r"song.mp3: FFmpeg cannot read this file as audio"):
        probe(text)


def test_a_playlist_posing_as_audio_cannot_make_ffmpeg_read_a_local_file(short_clips, tmp_path):
    secret = tmp_path / "private" / "secret.mp3"  # a local file a download must never reach
    secret.parent.mkdir()
    decode_to_wav(short_clips["song_a"], tmp_path / "secret.wav")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(tmp_path / "secret.wav"), str(secret)], check=True)
    evil = tmp_path / "downloaded.mp3"  # an HLS playlist, as a hostile server may serve it
    evil.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{secret}\n#EXT-X-ENDLIST\n")
    with pytest.raises(CovermillError, match=r"downloaded.mp3: FFmpeg cannot read this file as audio"):
        probe(evil)
    with pytest.raises(CovermillError, match=r"downloaded.mp3: FFmpeg could not decode the audio"):
        decode_to_wav(evil, tmp_path / "out.wav")
