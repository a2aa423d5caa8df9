"""The still-picture video: a real clip and a real thumbnail become an mp4 YouTube takes: H.264/AAC, 720p, faststart.

The falling-notes style has its own tests (test_falling_notes_video.py)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import ffmpeg
import pytest
from wand.color import Color
from wand.image import Image

from covermill.tasks.core.audio import decode_to_wav, probe
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.records import Song
from covermill.tasks.media.thumbnail import ThumbnailSettings, make_thumbnail
from covermill.tasks.media.video import VideoSettings, make_still_video, make_video_task


@pytest.fixture(scope="module")
def song_and_folder(clips, tmp_path_factory):
    """A song folder holding a real thumbnail and a real cover-length audio (a decoded clip)."""
    out = tmp_path_factory.mktemp("out")
    song = Song(id="5eed5eed5eed5eed", source=str(clips["song_a"]), source_id="file:a", title="Song A", artist="Band",
                duration=25.0, original=clips["song_a"], audio=clips["song_a"])
    folder = SongFolder(out, song.id)
    decode_to_wav(clips["song_a"], folder.winner_audio.with_suffix(".wav"))
    # The render stage writes FLAC; make the same kind of file from the real clip.
    ffmpeg.input(str(folder.winner_audio.with_suffix(".wav"))).output(str(folder.winner_audio)).run(quiet=True)
    make_thumbnail(song, folder.thumbnail, ThumbnailSettings())
    return song, out, folder


def streams(path: Path) -> tuple[dict, dict, float]:
    info = ffmpeg.probe(str(path))
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
    return video, audio, float(info["format"]["duration"])


def top_level_boxes(path: Path) -> list[str]:
    """The MP4 file's top-level box types in file order, read from their 8- or 16-byte headers."""
    boxes = []
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        assert size >= 8, f"broken box header at {offset}"
        boxes.append(kind.decode("latin-1"))
        offset += size
    assert offset == len(data)
    return boxes


def test_the_video_is_youtube_ready_h264_and_aac_as_long_as_the_audio(song_and_folder, tmp_path):
    _, _, folder = song_and_folder
    target = make_still_video(folder.thumbnail, folder.winner_audio, tmp_path / "video.mp4", VideoSettings())
    video, audio, duration = streams(target)
    assert (video["codec_name"], video["pix_fmt"], video["width"], video["height"]) == ("h264", "yuv420p", 1280, 720)
    assert video["r_frame_rate"] == "2/1"
    assert audio["codec_name"] == "aac" and audio["sample_rate"] == "48000"
    expected = probe(folder.winner_audio).duration
    assert expected == pytest.approx(25.0, abs=0.1)
    assert duration == pytest.approx(expected, abs=0.5)
    assert float(video["duration"]) == pytest.approx(expected, abs=0.5)
    assert float(audio["duration"]) == pytest.approx(expected, abs=0.5)
    assert [p.name for p in tmp_path.iterdir()] == ["video.mp4"]  # no temporary left behind
    # The repeated picture segments decode as one clean stream from start to end.
    decoded = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(target), "-f", "null", "-"], capture_output=True, text=True)
    assert decoded.returncode == 0 and decoded.stderr.strip() == ""


def test_the_moov_atom_comes_before_the_media_data(song_and_folder, tmp_path):
    _, _, folder = song_and_folder
    boxes = top_level_boxes(make_still_video(folder.thumbnail, folder.winner_audio, tmp_path / "v.mp4", VideoSettings()))
    assert "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat")


def test_a_picture_of_another_shape_is_letterboxed_to_720p(song_and_folder, tmp_path):
    _, _, folder = song_and_folder
    square = tmp_path / "square.png"
    with Image(width=900, height=900, background=Color("white")) as image:
        image.save(filename=str(square))
    target = make_still_video(square, folder.winner_audio, tmp_path / "v.mp4", VideoSettings(audio_channels=2))
    video, audio, _ = streams(target)
    assert (video["width"], video["height"]) == (1280, 720)
    assert audio["channels"] == 2
    # The first frame: white square in the middle, black bars at the sides.
    frame, _ = ffmpeg.input(str(target)).output("pipe:", vframes=1, format="rawvideo", pix_fmt="gray").run(quiet=True)
    row = frame[360 * 1280:361 * 1280]
    assert row[20] < 30 and row[1260] < 30 and row[640] > 220


def test_ffmpeg_failures_are_one_sentence_with_ffmpegs_reason(song_and_folder, tmp_path):
    _, _, folder = song_and_folder
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    with pytest.raises(CovermillError) as failure:
        make_still_video(broken, folder.winner_audio, tmp_path / "v.mp4", VideoSettings())
    message = str(failure.value)
    assert "FFmpeg could not make the video" in message and "\n" not in message
    assert "No JPEG data found" in message  # FFmpeg's own reason, not its generic last line
    assert not (tmp_path / "v.mp4").exists() and [p.name for p in tmp_path.iterdir()] == ["broken.jpg"]


def test_missing_or_non_audio_inputs_are_one_sentence(song_and_folder, tmp_path):
    _, _, folder = song_and_folder
    with pytest.raises(CovermillError, match="thumbnail"):
        make_still_video(tmp_path / "none.jpg", folder.winner_audio, tmp_path / "v.mp4")
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    with pytest.raises(CovermillError, match="audio"):
        make_still_video(folder.thumbnail, text, tmp_path / "v.mp4")


def test_the_task_makes_the_song_folder_video_replacing_a_stale_one(song_and_folder):
    song, out, folder = song_and_folder
    still = VideoSettings(style="still")
    made = make_video_task.fn(song, out, still)
    assert made == folder.video and streams(made)[0]["codec_name"] == "h264"
    made.write_bytes(b"stale")  # the flow's ledger decided it must be made again
    assert streams(make_video_task.fn(song, out, still))[0]["codec_name"] == "h264"


def test_an_odd_frame_size_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="must be even"):
        VideoSettings(width=1281)
