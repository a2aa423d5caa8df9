"""The falling-notes video: frames streamed to FFmpeg as raw yuv420p, time ranges in parallel.

The song's frames are split into as many equal time ranges as there are workers (one per CPU
core by default, at most 8). Each range is drawn by its own process (painter.py) and piped, frame by frame,
to its own FFmpeg as raw video: no image file per frame, no colour conversion. The H.264 ranges are
then joined by stream copy (FFmpeg's concat demuxer) while the audio is encoded, so no frame is
encoded twice. Frame k shows the piece at k / fps seconds; the video has round(duration * fps)
frames, so it ends with the audio to within half a frame.

Measured on 2 cores (bench/video.py, a real 4-minute cover of 5785 notes): 1080p30 at 5.4x
realtime in two ranges, 4.6x in one; 720p30 at 10.1x and 8.6x. Drawing is ~0.2 ms of a frame; the
rest is x264 (veryfast).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import ffmpeg
import numpy as np
from pydantic import Field

from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.core.audio import aac_options, ffmpeg_input, probe, run_tool, tool_reason
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.leftovers import scratch_folder
from covermill.tasks.core.settings import Settings
from covermill.tasks.media.falling_notes.colours import Palette
from covermill.tasks.media.falling_notes.timeline import NoteTimeline
from covermill.tasks.media.falling_notes.worker import FrameRange, RangeJob, encode_command, render_range, start_worker

if TYPE_CHECKING:
    from covermill.tasks.media.video import VideoSettings

# FFmpeg is stopped past this (the joins and the card): they take seconds for any song.
TOOL_TIMEOUT_S = 600.0
# The whole render is stopped past this multiple of the song's length (plus a minute): 1080p30
# renders at several times realtime here, so this is a hung encoder, not a slow machine.
RENDER_TIMEOUT_FACTOR = 4.0
DEFAULT_MAX_WORKERS = 8


class FallingNotesSettings(Settings):
    # ranges and workers change how it runs, not what it writes: left out of fingerprints (tasks/core/fingerprints.py)
    RUN_ONLY: ClassVar[frozenset[str]] = frozenset({"workers", "min_range_seconds", "max_minutes"})

    fall_seconds: float = Field(3.0, gt=0.2, le=20)  # how long a note is in view before it is struck
    intro_seconds: float = Field(3.0, ge=0, le=30)  # the thumbnail with its title over the first seconds (0: none)
    fade_seconds: float = Field(1.0, ge=0, le=10)  # the intro card's fade out, within intro_seconds
    split: int = Field(60, ge=21, le=108)  # a one-track MIDI: the right hand from this pitch up
    # time ranges drawn at once; None: one per CPU core, at most 8 (a 1080p range holds ~200 MB:
    # 841 MB at the peak for two on 2 cores)
    workers: int | None = Field(None, ge=1, le=64)
    min_range_seconds: float = Field(20.0, gt=0)  # a shorter range is not worth a process (~0.5 s to start one)
    # A longer song gets the still picture instead (its falling notes would take over 10 minutes on 2 cores).
    max_minutes: float = Field(20.0, gt=0)
    palette: Palette = Palette()


def split_frames(frames: int, workers: int, min_frames: int) -> list[tuple[int, int]]:
    """[first, last) ranges covering 0..frames, as even as possible, none shorter than `min_frames`
    unless there is only one."""
    count = max(1, min(workers, frames // max(1, min_frames)))
    bounds = np.linspace(0, frames, count + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _run_ranges(jobs: list[RangeJob], total: int, progress: Callable[[float], None], timeout_s: float, scratch: Path) -> None:
    """Every job, each in its own process (one job: in this one); raise the first failure as a sentence.

    Workers are `python -m ...worker JOB`, not multiprocessing: a spawned multiprocessing child
    re-runs the parent's main script, which a bench or a user's script need not guard."""
    if len(jobs) == 1:
        codes = [render_range(jobs[0], lambda count: progress(count / total))]
    else:
        done = [0] * len(jobs)
        workers = [start_worker(job, scratch / f"job-{slot:03d}.pickle") for slot, job in enumerate(jobs)]
        readers = [threading.Thread(target=_follow, args=(w, done, slot), daemon=True) for slot, w in enumerate(workers)]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + timeout_s
        try:
            while any(w.poll() is None for w in workers):
                if any(w.poll() not in (None, 0) for w in workers):
                    break  # one range failed: the video cannot be made, stop the others
                if time.monotonic() > deadline:
                    raise CovermillError(f"the falling-notes video did not finish within {timeout_s:.0f} s; lower "
                                         "video.width/height or fps, or use video.style: still.")
                time.sleep(0.25)
                progress(sum(done) / total)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                worker.wait()
            for reader in readers:
                reader.join()
        codes = [w.returncode for w in workers]
    for code, job in zip(codes, jobs):
        if code != 0:
            text = job.frames.log.read_text(errors="replace") if job.frames.log.exists() else ""
            raise CovermillError(f"FFmpeg could not encode the falling-notes video ({tool_reason(text)}); check video.preset and video.crf.")


def _follow(worker: subprocess.Popen, done: list[int], slot: int) -> None:
    """Keep done[slot] at the frame count the worker last printed."""
    for line in worker.stdout:
        if line.strip().isdigit():
            done[slot] = int(line)


def intro_card(image: Path, width: int, height: int) -> np.ndarray:
    """(width * height * 3 / 2,) uint8: `image` letterboxed to the frame, as a BT.709 yuv420p buffer."""
    scale = (f"scale={width}:{height}:force_original_aspect_ratio=decrease:out_color_matrix=bt709:out_range=tv,"
             f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,format=yuv420p")
    done = run_tool(["ffmpeg", "-nostdin", "-v", "error", "-i", ffmpeg_input(image), "-frames:v", "1", "-vf", scale,
                     "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"], TOOL_TIMEOUT_S, image, text=False)
    expected = width * height * 3 // 2
    if done.returncode != 0 or len(done.stdout) != expected:
        raise CovermillError(f"{image}: FFmpeg could not read the intro card ({tool_reason(done.stderr.decode(errors='replace'))}); make the thumbnail again.")
    return np.frombuffer(done.stdout, dtype=np.uint8).copy()


def _join(segments: list[Path], audio: Path, target: Path, duration: float, video: VideoSettings, scratch: Path) -> None:
    """The segments one after another by stream copy, with the audio encoded beside them."""
    listing = scratch / "segments.txt"
    listing.write_text("".join(f"file '{s.as_posix()}'\n" for s in segments))
    pictures = ffmpeg.input(str(listing), f="concat", safe=0).video
    sound = ffmpeg.input(ffmpeg_input(audio)).audio
    stream = ffmpeg.output(pictures, sound, str(target), vcodec="copy", t=f"{duration:.3f}", movflags="+faststart",
                           **aac_options(video.audio_bitrate, video.audio_sample_rate, video.audio_channels, video.aac_coder))
    done = run_tool(stream.global_args("-nostdin", "-hide_banner", "-v", "error").compile(overwrite_output=True),
                    TOOL_TIMEOUT_S, f"the video of {audio.name}")
    if done.returncode != 0:
        raise CovermillError(f"FFmpeg could not join the falling-notes video with {audio.name} ({tool_reason(done.stderr)}); check the audio file.")


def make_falling_notes_video(timeline: NoteTimeline, audio: Path, target: Path, video: VideoSettings,
                             card: Path | None = None, progress: Callable[[float], None] = lambda _: None) -> Path:
    """Render `timeline` falling onto a keyboard over `audio` into an H.264/AAC mp4 at `target`, atomically.

    `card` (the thumbnail) is shown over the first `intro_seconds`; `progress(fraction)` follows the frames."""
    style = video.falling_notes
    audio, target = Path(audio).absolute(), Path(target).absolute()
    if len(timeline) == 0:
        raise CovermillError(f"{target.parent.name}: the cover's MIDI has no notes to show; use video.style: still or make the cover again.")
    duration = probe(audio).duration
    if duration <= 0:
        raise CovermillError(f"{audio}: the audio has no length; render the cover again.")
    frames = max(1, round(duration * video.fps))
    workers = style.workers or min(os.cpu_count() or 1, DEFAULT_MAX_WORKERS)
    spans = split_frames(frames, workers, round(style.min_range_seconds * video.fps))
    threads = max(1, (os.cpu_count() or 1) // len(spans))
    card_yuv = intro_card(card, video.width, video.height) if card is not None and style.intro_seconds > 0 else None
    with scratch_folder("video") as scratch, atomic_output(target) as tmp:
        jobs = []
        for number, (first, last) in enumerate(spans):
            span = FrameRange(first, last, Path(scratch) / f"range-{number:03d}.mp4", Path(scratch) / f"range-{number:03d}.log")
            jobs.append(RangeJob(timeline, video.width, video.height, video.fps, style.palette, style.fall_seconds, card_yuv,
                                 style.intro_seconds, style.fade_seconds, span,
                                 encode_command(video.width, video.height, video.fps, video.preset, video.crf, threads, span.segment)))
        _run_ranges(jobs, frames, progress, RENDER_TIMEOUT_FACTOR * duration + 60, Path(scratch))
        _join([j.frames.segment for j in jobs], audio, tmp, duration, video, Path(scratch))
        progress(1.0)
    return target
