"""Audio files in and out: probe with ffprobe, decode with FFmpeg, read and write with soundfile."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.core.errors import CovermillError, DiskFull

SAMPLE_RATE = 44100  # every stage after download works at 44.1 kHz (the AMT-APC protocol's rate)
# A tool that does not answer is stopped: a file on a stalled network drive or a pipe with no writer
# would otherwise hold the whole night. Probing takes well under a second; decoding a 3-hour file ~1 min.
PROBE_TIMEOUT_S = 60.0
DECODE_TIMEOUT_S = 900.0
# The demuxers a song may need (what yt-dlp's bestaudio and people's files are). Without a list,
# FFmpeg opens whatever a file says it is: an HLS playlist named .mp3 whose segment was a file://
# path made covermill read (and publish) a local file. HLS, concat, image and subtitle demuxers
# stay closed. mpegts: a stream yt-dlp fetched over HLS is its MPEG-TS segments joined (yt-dlp is
# given no FFmpeg to remux them, tasks/cover/ytdlp_guard.py); the demuxer reads nothing else.
AUDIO_DEMUXERS = "mp3,ogg,wav,w64,flac,mov,mp4,m4a,3gp,matroska,webm,aac,aiff,caf,asf,wv,ape,mpc,tta,amr,au,mpegts"


@dataclass(frozen=True)
class AudioInfo:
    duration: float
    codec: str
    tags: dict[str, str] = field(default_factory=dict)

    def tag(self, *names: str) -> str:
        for name in names:
            for key, value in self.tags.items():
                if key.lower() == name and value.strip():
                    return value.strip()
        return ""


def ffmpeg_input(path: Path) -> str:
    """A local file as FFmpeg must be given it: absolute, so that a name like `-x.ogg` is not read as
    an option nor `concat:a.ogg` as a protocol."""
    return str(Path(path).resolve())


def run_tool(args: list[str], timeout_s: float, subject: object, text: bool = True) -> subprocess.CompletedProcess:
    """Run FFmpeg or ffprobe, captured (`text` False: stdout and stderr as bytes, for raw frames);
    one sentence when it does not finish within `timeout_s`."""
    try:
        return subprocess.run(args, capture_output=True, text=text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise CovermillError(f"{subject}: {args[0]} did not finish within {timeout_s:.0f} s; check that the file is "
                             "complete and on a working disk.") from None


def tool_reason(stderr: str | None) -> str:
    """FFmpeg's last word on a failure. Its final lines are often generic wrap-ups ("Error marking
    filters as finished"), so the last message from a named component ("[mjpeg @ 0x..] No JPEG
    data found") wins when there is one."""
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    for line in reversed(lines):
        named = re.match(r"\[(\w+) @ 0x[0-9a-f]+\]\s*(.+)", line)
        if named:
            return f"{named.group(1)}: {named.group(2)}"
    return lines[-1] if lines else "no message"


def probe(path: Path) -> AudioInfo:
    """Duration, codec and tags of an audio file; one clear sentence when it is not audio."""
    path = Path(path)
    if not path.exists():
        raise CovermillError(f"{path}: no such file; check the path.")
    if not path.is_file():
        raise CovermillError(f"{path}: not a file; give an audio file or a folder of them.")
    if path.stat().st_size == 0:
        raise CovermillError(f"{path}: the file is empty (0 bytes); give an audio file.")
    done = run_tool(["ffprobe", "-v", "error", "-format_whitelist", AUDIO_DEMUXERS, "-show_format", "-show_streams",
                     "-of", "json", ffmpeg_input(path)],
                    PROBE_TIMEOUT_S, path)
    try:
        info = json.loads(done.stdout) if done.returncode == 0 else None
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise CovermillError(f"{path}: FFmpeg cannot read this file as audio; give an audio file (mp3, ogg, wav, flac, m4a, ...).")
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not streams:
        raise CovermillError(f"{path}: the file has no audio stream; give an audio file.")
    fmt = info.get("format", {})
    duration = float(streams[0].get("duration") or fmt.get("duration") or 0.0)
    tags = {**fmt.get("tags", {}), **streams[0].get("tags", {})}
    return AudioInfo(duration=duration, codec=streams[0].get("codec_name", ""), tags=tags)


# FFmpeg's words (strerror) for a write the disk refused
DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "File too large")


def decode_to_wav(source: Path, target: Path, sample_rate: int = SAMPLE_RATE, subject: object = None) -> Path:
    """Decode any audio FFmpeg reads into a mono 16-bit WAV at `sample_rate`, atomically. A failure
    is told about `subject` (what the user gave: a path or URL), `source` by default."""
    subject = source if subject is None else subject
    with atomic_output(target) as tmp:
        result = run_tool(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-format_whitelist", AUDIO_DEMUXERS, "-i", ffmpeg_input(source),
             "-vn", "-ac", "1",
             "-ar", str(sample_rate), "-c:a", "pcm_s16le", str(tmp)],
            DECODE_TIMEOUT_S, subject,
        )
        if result.returncode != 0:
            detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "unknown error"
            full = next((words for words in DISK_FULL_WORDS if words in result.stderr), None)
            if result.returncode == -signal.SIGXFSZ:  # killed for passing the file size limit (ulimit -f)
                full = "File too large"
            if full:
                raise DiskFull(str(subject), Path(target).parent, full)
            raise CovermillError(f"{subject}: FFmpeg could not decode the audio ({detail}); check that the file is not damaged.")
    return Path(target)


def decoded_seconds(path: Path) -> float:
    """The length of a WAV covermill decoded, from its header."""
    return soundfile.info(str(path)).duration


def read_mono(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 mono samples of a WAV/FLAC written by covermill, at the expected rate."""
    samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise ValueError(f"{path}: expected {sample_rate} Hz, found {rate} Hz")
    return samples.mean(axis=1)


def write_audio(target: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write float samples as 16-bit WAV or FLAC (by suffix), atomically."""
    with atomic_output(target) as tmp:
        soundfile.write(str(tmp), np.asarray(samples, dtype=np.float32), sample_rate, subtype="PCM_16")
    return Path(target)


def aac_options(bitrate: str, sample_rate: int, channels: int | None, coder: str) -> dict[str, object]:
    """FFmpeg output options (ffmpeg-python keywords) for a video's AAC track; channels None keeps the source's."""
    options: dict[str, object] = {"acodec": "aac", "aac_coder": coder, "audio_bitrate": bitrate, "ar": sample_rate}
    if channels:
        options["ac"] = channels
    return options
