"""The quality bench's content-addressed cache: renders, chromagrams, Qmax and WPD values under
OUT/cache, named by what they were made from, so a second run only computes what a changed setting
changed. The jobs run in the bench's worker processes (spawned: module-level, picklable by name)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from covermill.flows.config import CovermillConfig
from covermill.tasks.core.atomic import atomic_output, file_sha256, read_json, write_json
from covermill.tasks.cover.render import render_midi
from covermill.tasks.rank.qmax import PROTOCOL, QmaxResult, cover_chroma, frame_seconds, qmax
from covermill.tasks.rank.warping import alignment_deviation


class Cache:
    """Renders, chromagrams and Qmax values under OUT/cache, named by what they were made from."""

    def __init__(self, root: Path, config: CovermillConfig):
        self.root = root
        self.render_settings = config.render
        self.render_key = hashlib.sha256(config.render.model_dump_json().encode()).hexdigest()[:12]
        self.qmax_file = root / "qmax.json"
        self.qmax: dict[str, list[float]] = read_json(self.qmax_file) if self.qmax_file.exists() else {}
        self.wpd_file = root / "wpd.json"
        self.wpds: dict[str, float | None] = read_json(self.wpd_file) if self.wpd_file.exists() else {}

    def audio_for(self, midi: Path) -> tuple[str, Path]:
        """(key, FLAC) of a MIDI rendered as the protocol says; rendered once per content and settings."""
        key = f"{file_sha256(midi)[:16]}-{self.render_key}"
        target = self.root / "audio" / f"{key}.flac"
        if not target.exists():
            render_midi(midi, target, self.render_settings, drop_shorter_than=PROTOCOL.min_note_seconds)
        return key, target

    def chroma_path(self, key: str) -> Path:
        return self.root / "chroma" / f"{key}.npy"

    def result(self, cover_key: str, original_key: str) -> QmaxResult | None:
        found = self.qmax.get(f"{cover_key}|{original_key}")
        return QmaxResult(*found) if found else None

    def store(self, cover_key: str, original_key: str, result: QmaxResult) -> None:
        self.qmax[f"{cover_key}|{original_key}"] = [result.qmax, result.frames, result.aligned_share]

    def has_wpd(self, cover_key: str, original_key: str) -> bool:
        return f"{cover_key}|{original_key}" in self.wpds

    def wpd(self, cover_key: str, original_key: str) -> float | None:
        """The pair's WPD, seconds; None when too little to measure or not computed yet."""
        return self.wpds.get(f"{cover_key}|{original_key}")

    def store_wpd(self, cover_key: str, original_key: str, wpd: float | None) -> None:
        self.wpds[f"{cover_key}|{original_key}"] = wpd

    def save(self) -> None:
        write_json(self.qmax_file, self.qmax)
        write_json(self.wpd_file, self.wpds)


def chroma_job(audio: str, target: str) -> str:
    """Native-hop HPCP of an audio file into an .npy (in a worker process)."""
    features = cover_chroma(Path(audio), factor=1)  # the ranker's own chroma, unpooled
    with atomic_output(Path(target)) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, features)
    return target


def qmax_job(cover: str, original: str) -> tuple[float, int, float]:
    return tuple(qmax(np.load(cover), np.load(original)))


def wpd_job(cover: str, original: str) -> float | None:
    """WPD of a cover against its original on the native-hop chroma, as the ranker measures it on its pooled one."""
    return alignment_deviation(np.load(cover), np.load(original), frame_seconds(1))
