"""One time range of the falling-notes video: its frames drawn and piped to an FFmpeg of its own.

`python -m covermill.tasks.media.falling_notes.worker JOB` runs a pickled RangeJob and prints the
frames done as it goes (encoder.py starts one per range and reads those lines for progress).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from covermill.tasks.media.falling_notes.colours import Palette
from covermill.tasks.media.falling_notes.painter import Frame, FramePainter
from covermill.tasks.media.falling_notes.timeline import NoteTimeline

COLOUR_TAGS = ["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv"]
MODULE = "covermill.tasks.media.falling_notes.worker"
REPORT_EVERY = 15  # frames between progress lines (and checks that the parent still waits)


@dataclass(frozen=True)
class FrameRange:
    """Frames first..last-1 of the video, drawn and encoded into `segment`; FFmpeg's messages in `log`."""

    first: int
    last: int
    segment: Path
    log: Path


@dataclass(frozen=True)
class RangeJob:
    """Everything a worker needs to draw and encode one range (picklable)."""

    timeline: NoteTimeline
    width: int
    height: int
    fps: float
    palette: Palette
    fall_seconds: float
    card: np.ndarray | None  # yuv420p intro card, or None
    intro_seconds: float
    fade_seconds: float
    frames: FrameRange
    command: list[str]  # the FFmpeg that reads the frames on stdin
    parent: int = 0  # in a worker, the process waiting for it: when that is gone, stop (0: no such check)


def encode_command(width: int, height: int, fps: float, preset: str, crf: int, threads: int, segment: Path) -> list[str]:
    """FFmpeg reading raw yuv420p frames on stdin and writing an H.264 segment tagged BT.709."""
    return ["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-framerate", f"{fps:g}", "-i", "pipe:0",
            "-an", "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p", "-threads", str(threads),
            *COLOUR_TAGS, str(segment)]


def render_range(job: RangeJob, report: Callable[[int], None]) -> int:
    """Draw the job's frames and pipe them to its FFmpeg; `report(frames done)` as it goes. FFmpeg's exit code."""
    painter = FramePainter(job.timeline, job.width, job.height, job.palette, job.fall_seconds, job.card,
                           job.intro_seconds, job.fade_seconds)
    frame = Frame(job.width, job.height)
    span = job.frames
    with open(span.log, "wb") as log:
        encoder = subprocess.Popen(job.command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        finished = False
        try:
            for k in range(span.first, span.last):
                try:
                    encoder.stdin.write(painter.paint(k / job.fps, frame).data)
                except BrokenPipeError:  # FFmpeg stopped; its log says why
                    break
                if (k - span.first) % REPORT_EVERY == REPORT_EVERY - 1:
                    report(k - span.first + 1)
                    if job.parent and os.getppid() != job.parent:  # the renderer was killed: stop rather than finish alone
                        return -9
            else:
                finished = True
        finally:
            if finished:
                encoder.stdin.close()
            else:
                encoder.kill()
            code = encoder.wait()
    report(span.last - span.first)
    return code


def start_worker(job: RangeJob, job_file: Path) -> subprocess.Popen:
    """This module run on `job` in a new Python process; its stdout carries the frames done."""
    job_file.write_bytes(pickle.dumps(replace(job, parent=os.getpid())))
    return subprocess.Popen([sys.executable, "-m", MODULE, str(job_file)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)


def main() -> int:
    job: RangeJob = pickle.loads(Path(sys.argv[1]).read_bytes())
    try:
        code = render_range(job, lambda count: print(count, flush=True))
    except BrokenPipeError:  # nobody reads the progress any more: the renderer is gone
        return 1
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
