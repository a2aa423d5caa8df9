"""Video stage: the thumbnail held still over the winning cover's audio, as an mp4 YouTube takes as is.

The picture never changes, so it is encoded once, as one short closed group of pictures (decoded
and scaled once, repeated by FFmpeg's `loop` filter, no B-frames), and that segment is repeated by
stream copy for the length of the audio. The video then costs the same fraction of a second for
any song, and what remains is the AAC encode (hence the fast AAC coder). Encoding every frame
instead took longer than the audio on 2 cores.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Literal

import ffmpeg
from pydantic import Field

from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.core.audio import ffmpeg_input, probe, run_tool
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.records import Song
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.stage_task import stage_task

# FFmpeg is stopped past this: a still-picture video encodes at over 100x realtime, so half an hour
# is a hung encoder, not a long song.
VIDEO_TIMEOUT_S = 1800.0


class VideoSettings(Settings):
    width: int = Field(1280, ge=16)
    height: int = Field(720, ge=16)
    fps: float = Field(2.0, gt=0, le=60)  # a still picture needs few frames
    keyframe_seconds: float = Field(10.0, gt=0)  # how far apart players can seek to a clean frame
    preset: str = "veryfast"  # x264 speed preset; a still image gains nothing from slower ones
    crf: int = Field(20, ge=0, le=51)
    audio_bitrate: str = "192k"
    audio_sample_rate: int = 48000  # YouTube's recommended rate
    audio_channels: int | None = Field(None, ge=1, le=2)  # None keeps the cover's own (the render is mono)
    # FFmpeg's default "twoloop" coder took 4x as long; at 192k both kept ~45 dB SNR on a real clip.
    aac_coder: Literal["fast", "twoloop"] = "fast"


def _reason(stderr: str | None) -> str:
    """FFmpeg's last word on a failure. Its final lines are often generic wrap-ups ("Error marking
    filters as finished"), so the last message from a named component ("[mjpeg @ 0x..] No JPEG
    data found") wins when there is one."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    for line in reversed(lines):
        named = re.match(r"\[(\w+) @ 0x[0-9a-f]+\]\s*(.+)", line)
        if named:
            return f"{named.group(1)}: {named.group(2)}"
    return lines[-1] if lines else "no message"


def _run(stream: ffmpeg.nodes.OutputStream, image: Path, audio: Path) -> None:
    args = stream.global_args("-nostdin", "-hide_banner", "-v", "error").compile(overwrite_output=True)
    done = run_tool(args, VIDEO_TIMEOUT_S, f"the video of {audio.name}")
    if done.returncode != 0:
        raise CovermillError(f"FFmpeg could not make the video from {image.name} and {audio.name} ({_reason(done.stderr)}); check both files.")


def _picture_segment(image: Path, audio: Path, target: Path, settings: VideoSettings) -> Path:
    """One keyframe interval of the still picture, scaled and letterboxed, as H.264 without B-frames
    (so that repeated copies keep exact timestamps)."""
    w, h = settings.width, settings.height
    frames = max(1, round(settings.fps * settings.keyframe_seconds))
    picture = (
        ffmpeg.input(ffmpeg_input(image), framerate=settings.fps)
        .filter("scale", w, h, force_original_aspect_ratio="decrease")
        .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2", color="black")
        .filter("setsar", 1)
        .filter("format", "yuv420p")
        .filter("loop", loop=-1, size=1, start=0)
        .filter("trim", end_frame=frames)
    )
    _run(ffmpeg.output(
        picture, str(target), vcodec="libx264", preset=settings.preset, tune="stillimage", crf=settings.crf,
        pix_fmt="yuv420p", r=settings.fps, g=frames, bf=0,
    ), image, audio)
    return target


def make_video(image: Path, audio: Path, target: Path, settings: VideoSettings | None = None) -> Path:
    """Encode `image` held for the length of `audio` into an H.264/AAC mp4 at `target`, atomically."""
    settings = settings or VideoSettings()
    # Absolute paths: FFmpeg would read a name starting with "-" as an option, "name:" as a protocol.
    image, audio = Path(image).absolute(), Path(audio).absolute()
    if not image.is_file():
        raise CovermillError(f"{image}: the video's picture is missing; make the thumbnail first.")
    duration = probe(audio).duration  # also turns a missing or non-audio file into one sentence
    if duration <= 0:
        raise CovermillError(f"{audio}: the audio has no length; render the cover again.")

    audio_options = {"ac": settings.audio_channels} if settings.audio_channels else {}
    with tempfile.TemporaryDirectory(prefix="covermill-video-") as scratch, atomic_output(Path(target).absolute()) as tmp:
        segment = _picture_segment(image, audio, Path(scratch) / "picture.mp4", settings)
        repeated = ffmpeg.input(ffmpeg_input(segment), stream_loop=-1).video
        sound = ffmpeg.input(ffmpeg_input(audio)).audio
        # -t ends the endlessly repeated picture with the audio; -shortest guards a probe that overshot.
        _run(ffmpeg.output(
            repeated, sound, str(tmp), t=f"{duration:.3f}", vcodec="copy",
            acodec="aac", aac_coder=settings.aac_coder, audio_bitrate=settings.audio_bitrate,
            ar=settings.audio_sample_rate, movflags="+faststart", shortest=None, **audio_options,
        ), image, audio)
    return Path(target)


def make_song_video(song: Song, out_dir: Path, settings: VideoSettings) -> Path:
    """The song's video from its thumbnail and winner; whether it is stale is the ledger's call."""
    folder = SongFolder(out_dir, song.id)
    return make_video(folder.thumbnail, folder.winner_audio, folder.video, settings)


make_video_task = stage_task("video")(make_song_video)
