"""Video stage: the winning cover as an mp4 YouTube takes as is, in one of two styles.

`falling_notes` (the default; tasks/media/falling_notes/) draws the winner's MIDI falling onto a
keyboard, the thumbnail as an intro card. `still` holds the thumbnail for the whole song.

The still picture never changes, so it is encoded once, as one short closed group of pictures (decoded
and scaled once, repeated by FFmpeg's `loop` filter, no B-frames), and that segment is repeated by
stream copy for the length of the audio. The video then costs the same fraction of a second for
any song, and what remains is the AAC encode (hence the fast AAC coder). Encoding every frame
instead took longer than the audio on 2 cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import ffmpeg
from prefect.context import FlowRunContext, TaskRunContext
from pydantic import Field, field_validator

from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.core.audio import aac_options, ffmpeg_input, probe, run_tool, tool_reason
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.leftovers import scratch_folder
from covermill.tasks.core.records import Song
from covermill.tasks.core.run_artifacts import progress_bar
from covermill.tasks.core.settings import Settings
from covermill.tasks.core.stage_task import stage_logger, stage_task
from covermill.tasks.media.falling_notes.encoder import FallingNotesSettings, make_falling_notes_video
from covermill.tasks.media.falling_notes.timeline import NoteTimeline

# FFmpeg is stopped past this: a still-picture video encodes at over 100x realtime, so half an hour
# is a hung encoder, not a long song.
VIDEO_TIMEOUT_S = 1800.0


class StillSettings(Settings):
    fps: float = Field(2.0, gt=0, le=60)  # a still picture needs few frames
    keyframe_seconds: float = Field(10.0, gt=0)  # how far apart players can seek to a clean frame


class VideoSettings(Settings):
    style: Literal["falling_notes", "still"] = "falling_notes"
    width: int = Field(1280, ge=16, le=3840)
    height: int = Field(720, ge=16, le=2160)
    fps: float = Field(30.0, gt=0, le=60)  # the falling notes' frame rate (the still picture has its own)
    preset: str = "veryfast"  # x264 speed preset: flat colours gain little from slower ones
    crf: int = Field(20, ge=0, le=51)
    audio_bitrate: str = "192k"
    audio_sample_rate: int = 48000  # YouTube's recommended rate
    audio_channels: int | None = Field(None, ge=1, le=2)  # None keeps the cover's own (the render is mono)
    # FFmpeg's default "twoloop" coder took 4x as long; at 192k both kept ~45 dB SNR on a real clip.
    aac_coder: Literal["fast", "twoloop"] = "fast"
    still: StillSettings = StillSettings()
    falling_notes: FallingNotesSettings = FallingNotesSettings()

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even (H.264 in yuv420p halves it), e.g. {value + 1}")
        return value


def _run(stream: ffmpeg.nodes.OutputStream, image: Path, audio: Path) -> None:
    args = stream.global_args("-nostdin", "-hide_banner", "-v", "error").compile(overwrite_output=True)
    done = run_tool(args, VIDEO_TIMEOUT_S, f"the video of {audio.name}")
    if done.returncode != 0:
        raise CovermillError(f"FFmpeg could not make the video from {image.name} and {audio.name} ({tool_reason(done.stderr)}); check both files.")


def _picture_segment(image: Path, audio: Path, target: Path, settings: VideoSettings) -> Path:
    """One keyframe interval of the still picture, scaled and letterboxed, as H.264 without B-frames
    (so that repeated copies keep exact timestamps)."""
    w, h = settings.width, settings.height
    fps = settings.still.fps
    frames = max(1, round(fps * settings.still.keyframe_seconds))
    picture = (
        ffmpeg.input(ffmpeg_input(image), framerate=fps)
        .filter("scale", w, h, force_original_aspect_ratio="decrease")
        .filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2", color="black")
        .filter("setsar", 1)
        .filter("format", "yuv420p")
        .filter("loop", loop=-1, size=1, start=0)
        .filter("trim", end_frame=frames)
    )
    _run(ffmpeg.output(
        picture, str(target), vcodec="libx264", preset=settings.preset, tune="stillimage", crf=settings.crf,
        pix_fmt="yuv420p", r=fps, g=frames, bf=0,
    ), image, audio)
    return target


def make_still_video(image: Path, audio: Path, target: Path, settings: VideoSettings | None = None) -> Path:
    """Encode `image` held for the length of `audio` into an H.264/AAC mp4 at `target`, atomically."""
    settings = settings or VideoSettings()
    # Absolute paths: FFmpeg would read a name starting with "-" as an option, "name:" as a protocol.
    image, audio = Path(image).absolute(), Path(audio).absolute()
    if not image.is_file():
        raise CovermillError(f"{image}: the video's picture is missing; make the thumbnail first.")
    duration = probe(audio).duration  # also turns a missing or non-audio file into one sentence
    if duration <= 0:
        raise CovermillError(f"{audio}: the audio has no length; render the cover again.")

    with scratch_folder("video") as scratch, atomic_output(Path(target).absolute()) as tmp:
        segment = _picture_segment(image, audio, Path(scratch) / "picture.mp4", settings)
        repeated = ffmpeg.input(ffmpeg_input(segment), stream_loop=-1).video
        sound = ffmpeg.input(ffmpeg_input(audio)).audio
        # -t ends the endlessly repeated picture with the audio; -shortest guards a probe that overshot.
        _run(ffmpeg.output(
            repeated, sound, str(tmp), t=f"{duration:.3f}", vcodec="copy", movflags="+faststart", shortest=None,
            **aac_options(settings.audio_bitrate, settings.audio_sample_rate, settings.audio_channels, settings.aac_coder),
        ), image, audio)
    return Path(target)


def make_song_video(song: Song, out_dir: Path, settings: VideoSettings) -> Path:
    """The song's video in the configured style; whether it is stale is the ledger's call.

    A song longer than falling_notes.max_minutes gets the still picture (logged)."""
    folder = SongFolder(out_dir, song.id)
    log = stage_logger("video")
    if settings.style == "falling_notes":
        minutes = probe(folder.winner_audio).duration / 60
        if minutes <= settings.falling_notes.max_minutes:
            return _falling_notes(song, folder, settings, log)
        log.warning("video: %.0f minutes is over video.falling_notes.max_minutes (%g); the still picture instead",
                    minutes, settings.falling_notes.max_minutes)
    return make_still_video(folder.thumbnail, folder.winner_audio, folder.video, settings)


def _falling_notes(song: Song, folder: SongFolder, settings: VideoSettings, log) -> Path:  # noqa: ANN001 (a logger)
    timeline = NoteTimeline.read(folder.winner_midi, settings.falling_notes.split)
    card = folder.thumbnail if folder.thumbnail.is_file() else None
    description = f"Falling-notes video of {song.title!r}, {settings.width}x{settings.height} at {settings.fps:g} fps"
    report = _progress(song, description, log)
    return make_falling_notes_video(timeline, folder.winner_audio, folder.video, settings, card, report)


def _progress(song: Song, description: str, log) -> Callable[[float], None]:  # noqa: ANN001 (a logger)
    """Progress in the log every 10 % and in a Prefect progress artifact (inside a run only: outside
    one, creating an artifact would start a temporary Prefect server)."""
    inside_a_run = FlowRunContext.get() is not None or TaskRunContext.get() is not None
    # the key "video" is the link to the finished file (run_artifacts.link_song_files)
    move = progress_bar("video-render", song, description) if inside_a_run else None
    said = -1
    started = time.perf_counter()

    def report(fraction: float) -> None:
        nonlocal said
        tenth = int(fraction * 10)
        if tenth > said:
            said = tenth
            log.info("video: %d %% (%.0f s)", tenth * 10, time.perf_counter() - started)
            if move is not None:
                move(fraction)

    return report


make_video_task = stage_task("video")(make_song_video)
