"""The falling-notes video end to end: a MIDI of known notes, rendered by FluidSynth, becomes an mp4
whose frames show those notes on the right keys in the right hands' colours, in sync with the audio."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ffmpeg
import numpy as np
import pytest

from covermill.models.notes import Note
from covermill.tasks.core.audio import probe
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.leftovers import remove_leftovers
from covermill.tasks.core.midi import write_piece
from covermill.tasks.core.music import LEFT, RIGHT, BeatGrid, Piece
from covermill.tasks.core.records import Song
from covermill.tasks.cover.render import RenderSettings, render_winner
from covermill.tasks.media.falling_notes.colours import Palette
from covermill.tasks.media.falling_notes.encoder import make_falling_notes_video
from covermill.tasks.media.falling_notes.timeline import NoteTimeline
from covermill.tasks.media.video import VideoSettings, make_song_video

WIDTH, HEIGHT, FPS = 1280, 720, 30
# Hand-computed for 1280 x 720 (painter.Layout): the felt strip starts at row 600, the keys span rows
# 604..712 (black keys to 672), the pedal strip 712..720; a white key is 1280 / 52 = 24.6 pixels wide.
FALL_BOTTOM, WHITE_ROW, BLACK_ROW = 600, 705, 640
C5_X = round(30.5 * 1280 / 52)  # white key 30: A0 B0, then 7 per octave from C1 (C5 = 2 + 4 * 7)
C3_X = round(16.5 * 1280 / 52)
D5_X = round(31.5 * 1280 / 52)
FSHARP5_X = round(34 * 1280 / 52)  # a black key, on the F5-G5 line
NOTES = [
    Note(1.0, 1.5, 72, 110, RIGHT),  # C5
    Note(1.0, 2.0, 48, 110, LEFT),  # C3
    Note(2.5, 3.0, 78, 110, RIGHT),  # F#5
    Note(8.0, 8.5, 45, 110, LEFT),  # A2, after a silence
]


@pytest.fixture(scope="module")
def known(tmp_path_factory) -> tuple[Path, Path]:
    """(winner.mid, winner.flac): NOTES in two hand tracks on a 120 BPM grid, rendered by FluidSynth."""
    folder = tmp_path_factory.mktemp("known")
    midi = write_piece(Piece(NOTES, grid=BeatGrid.fixed(10.0)), folder / "winner.mid")
    return midi, render_winner(midi, folder / "winner.flac", RenderSettings())


def settings(**falling) -> VideoSettings:
    return VideoSettings(width=WIDTH, height=HEIGHT, fps=FPS, falling_notes={"intro_seconds": 0.0, **falling})


def frame_at(video: Path, index: int) -> np.ndarray:
    """(HEIGHT, WIDTH, 3) RGB of frame `index`, decoded by FFmpeg."""
    data, _ = (ffmpeg.input(str(video)).filter("select", f"eq(n,{index})")
               .output("pipe:", vframes=1, format="rawvideo", pix_fmt="rgb24", fps_mode="passthrough").run(quiet=True))
    return np.frombuffer(data, np.uint8).reshape(HEIGHT, WIDTH, 3).astype(int)


def hand_of(pixel: np.ndarray) -> str:
    """Which hand's colour a pixel shows ("" when it is neither: a key, the background)."""
    palette = Palette()
    distances = {RIGHT: np.abs(pixel - np.array(palette.right_hand)).max(), LEFT: np.abs(pixel - np.array(palette.left_hand)).max()}
    best = min(distances, key=distances.get)
    return best if distances[best] < 40 else ""


def streams(video: Path) -> dict[str, dict]:
    return {s["codec_type"]: s for s in ffmpeg.probe(str(video))["streams"]}


@pytest.fixture(scope="module")
def video(known, tmp_path_factory) -> Path:
    midi, audio = known
    return make_falling_notes_video(NoteTimeline.read(midi), audio, tmp_path_factory.mktemp("v") / "video.mp4", settings())


def test_the_frame_at_an_onset_lights_the_played_keys_in_their_hands_colours(video):
    frame = frame_at(video, 30)  # 1.0 s: C5 (right) and C3 (left) are struck
    assert hand_of(frame[WHITE_ROW, C5_X]) == RIGHT
    assert hand_of(frame[WHITE_ROW, C3_X]) == LEFT
    assert hand_of(frame[WHITE_ROW, D5_X]) == "" and frame[WHITE_ROW, D5_X].min() > 200  # a key not played stays white
    assert hand_of(frame[BLACK_ROW, FSHARP5_X]) == ""  # F#5 is still falling
    later = frame_at(video, 75)  # 2.5 s: F#5, a black key, in the right hand; C3 has been released
    assert hand_of(later[BLACK_ROW, FSHARP5_X]) == RIGHT
    assert hand_of(later[WHITE_ROW, C3_X]) == ""


def test_notes_fall_onto_the_keys_at_constant_speed_reaching_them_at_their_onset(video):
    frame = frame_at(video, 15)  # 0.5 s before C5: its bar's bottom is 0.5 s x 200 px/s above the keys
    bottom = FALL_BOTTOM - 100
    assert hand_of(frame[bottom - 4, C5_X]) == RIGHT and hand_of(frame[bottom + 4, C5_X]) == ""
    # the bar is as long as the note: 0.5 s = 100 pixels (less the gap left above every note)
    assert hand_of(frame[bottom - 92, C5_X]) == RIGHT and hand_of(frame[bottom - 106, C5_X]) == ""


def test_silent_frames_show_no_note_over_the_keyboard(video):
    frame = frame_at(video, 135)  # 4.5 s: the last note falls into view only at 5.0 s
    fall = frame[:FALL_BOTTOM]
    # greys only (background and lines): a note at this velocity is over 100 levels from grey; x264
    # leaves a few faint pixels (up to ~45) where a note passed
    assert (fall.max(axis=-1) - fall.min(axis=-1)).max() < 60
    assert not any(hand_of(frame[WHITE_ROW, x]) for x in range(0, WIDTH, 5))


def test_the_video_is_h264_aac_yuv420p_and_as_long_as_the_audio_within_a_frame(video, known):
    found = streams(video)
    picture, sound = found["video"], found["audio"]
    assert (picture["codec_name"], picture["pix_fmt"], picture["width"], picture["height"]) == ("h264", "yuv420p", WIDTH, HEIGHT)
    assert sound["codec_name"] == "aac"
    assert picture["r_frame_rate"] == "30/1"
    audio = probe(known[1]).duration
    assert abs(float(picture["duration"]) - audio) <= 1 / FPS
    assert abs(float(sound["duration"]) - audio) <= 1 / FPS
    # both start together: the A/V offset is under a frame
    assert abs(float(picture["start_time"]) - float(sound["start_time"])) < 1 / FPS
    decoded = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(video), "-f", "null", "-"], capture_output=True, text=True)
    assert decoded.returncode == 0 and decoded.stderr.strip() == ""


def test_parallel_time_ranges_join_into_the_same_frames(known, video, tmp_path):
    midi, audio = known
    progress: list[float] = []
    joined = make_falling_notes_video(NoteTimeline.read(midi), audio, tmp_path / "joined.mp4",
                                      settings(workers=3, min_range_seconds=1.0), progress=progress.append)
    assert int(streams(joined)["video"]["nb_frames"]) == int(streams(video)["video"]["nb_frames"]) == round(probe(audio).duration * FPS)
    for index in (30, 75, 135, 240):  # frames inside each of the three ranges
        assert np.abs(frame_at(joined, index) - frame_at(video, index)).mean() < 2
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) > 2
    assert [p.name for p in tmp_path.iterdir()] == ["joined.mp4"]  # no temporary left


def test_the_intro_card_shows_the_thumbnail_over_the_first_seconds(known, tmp_path):
    midi, audio = known
    card = tmp_path / "card.png"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=0xd02020:s=640x360", "-frames:v", "1", str(card)], check=True)
    made = make_falling_notes_video(NoteTimeline.read(midi), audio, tmp_path / "v.mp4",
                                    settings(intro_seconds=2.0, fade_seconds=0.5), card=card)
    first = frame_at(made, 0)
    assert np.abs(first[360, 640] - np.array([0xD0, 0x20, 0x20])).max() < 16  # the card fills the frame
    after = frame_at(made, 75)
    assert hand_of(after[BLACK_ROW, FSHARP5_X]) == RIGHT  # the card is gone: the keys show


def test_a_midi_without_notes_is_one_sentence(known, tmp_path):
    _, audio = known
    empty = write_piece(Piece([]), tmp_path / "empty.mid")
    with pytest.raises(CovermillError, match="no notes") as failure:
        make_falling_notes_video(NoteTimeline.read(empty), audio, tmp_path / "v.mp4", settings())
    assert "\n" not in str(failure.value) and not (tmp_path / "v.mp4").exists()


def test_a_song_over_the_cap_gets_the_still_picture(tmp_path):
    """A 30-minute dense MIDI and its 30 minutes of audio: over max_minutes (20), so the still picture."""
    song = Song(id="5eed5eed5eed5eed", source="x.ogg", source_id="file:x", title="Long", duration=1800.0,
                original=tmp_path / "x.ogg", audio=tmp_path / "x.ogg")
    folder = SongFolder(tmp_path, song.id)
    folder.root.mkdir()
    notes = [Note(t, t + 0.2, 40 + int(t * 7) % 40, 90, RIGHT if int(t * 7) % 40 >= 20 else LEFT) for t in np.arange(0, 1800, 0.125)]
    write_piece(Piece(notes), folder.winner_midi)
    timeline = NoteTimeline.read(folder.winner_midi)
    assert len(timeline) == 14400 and timeline.end_time == pytest.approx(1800.075, abs=0.01)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "1800",
                    str(folder.winner_audio)], check=True)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=gray:s=1280x720", "-frames:v", "1",
                    str(folder.thumbnail)], check=True)
    made = make_song_video(song, tmp_path, VideoSettings())
    picture = streams(made)["video"]
    assert picture["r_frame_rate"] == "2/1"  # the still picture's rate
    assert float(picture["duration"]) == pytest.approx(1800, abs=1)


def test_a_killed_render_leaves_no_worker_running(known, tmp_path):
    """SIGKILL the process rendering in parallel ranges: its workers notice and stop with their FFmpegs."""
    midi, audio = known
    long_audio = tmp_path / "long.flac"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-stream_loop", "20", "-i", str(audio), str(long_audio)], check=True)
    script = (
        "import sys; from pathlib import Path\n"
        "from covermill.tasks.media.video import VideoSettings\n"
        "from covermill.tasks.media.falling_notes.timeline import NoteTimeline\n"
        "from covermill.tasks.media.falling_notes.encoder import make_falling_notes_video\n"
        "s = VideoSettings(width=1920, height=1080, falling_notes={'workers': 2, 'min_range_seconds': 1.0})\n"
        f"make_falling_notes_video(NoteTimeline.read(Path({str(midi)!r})), Path({str(long_audio)!r}), Path({str(tmp_path / 'v.mp4')!r}), s,"
        " progress=lambda f: print(f, flush=True))\n"
    )
    renderer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert float(renderer.stdout.readline()) >= 0  # rendering has begun
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(renderer.pid)], capture_output=True, text=True).stdout.split()]
    assert len(workers) == 2
    os.kill(renderer.pid, signal.SIGKILL)
    renderer.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in workers):
        time.sleep(0.2)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)]
    assert not (tmp_path / "v.mp4").exists()
    # its scratch folder (the ranges) is left behind, and the next run removes it
    scratch = list(Path(tempfile.gettempdir()).glob(f"covermill-video-*~{renderer.pid}-*"))
    assert len(scratch) == 1 and list(scratch[0].glob("range-*.mp4"))
    assert scratch[0] in remove_leftovers(tmp_path) and not scratch[0].exists()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"


def test_the_stage_renders_the_song_folders_winner_with_progress_in_the_log(known, tmp_path, caplog):
    """Outside a Prefect run (no artifact to move), the stage still reports progress in its log."""
    midi, audio = known
    song = Song(id="5eed5eed5eed5eed", source="x.ogg", source_id="file:x", title="Known", duration=10.0,
                original=tmp_path / "x.ogg", audio=tmp_path / "x.ogg")
    folder = SongFolder(tmp_path, song.id)
    folder.root.mkdir()
    folder.winner_midi.write_bytes(midi.read_bytes())
    folder.winner_audio.write_bytes(audio.read_bytes())  # no thumbnail: no intro card
    with caplog.at_level("INFO", logger="covermill.video"):
        made = make_song_video(song, tmp_path, settings())
    assert made == folder.video and streams(made)["video"]["r_frame_rate"] == "30/1"
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("video: ")]
    assert said[0].startswith("video: 0 %") and said[-1].startswith("video: 100 %") and len(said) >= 3
