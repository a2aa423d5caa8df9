"""The recognisability gate: is the pick nearer to its own song than to the other songs of the work folder?

Some songs survive no arrangement: an ambient pad track gave a pick nearer (by Qmax) to another
song than to its own. Before a pick may join the publishing queue it is compared, with the
ranker's own protocol, against its original and against up to `others` other originals the work
folder holds (a fixed sample per song, so a re-run compares the same ones). A pick that is not
strictly nearest to its own original is held back with that reason; a person may still approve it.
Each original's chroma is computed once and kept beside it (original_chroma.npy, the native hop;
pooled per comparison by that original's own factor), so a check costs the pick's chroma once and
one Qmax per comparison (about 0.3 s at 2000 frames).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from pydantic import Field

from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.core.audio import read_mono
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.records import Record, Song
from covermill.tasks.core.settings import Settings
from covermill.tasks.rank.qmax import PROTOCOL, hpcp, pool_factor, pool_frames, qmax


class IdentitySettings(Settings):
    enabled: bool = True
    others: int = Field(5, ge=1, le=100)  # other originals a pick is compared with
    max_frames: int = Field(2000, ge=50)  # as rank.max_frames: each original pooled to at most this many frames


class Comparison(Record):
    song_id: str
    title: str
    qmax: float  # the pick against this song's original


class Identity(Record):
    """The gate's verdict on one pick: `held` when another original is at least as near as its own."""

    own: float  # Qmax of the pick against its own original
    others: list[Comparison]  # nearest first
    held: bool
    reason: str


def native_chroma(audio: Path, cache: Path | None = None) -> np.ndarray:
    """(frames, 12) HPCP of an audio file at the protocol's native hop, read from `cache` when there."""
    if cache is not None and cache.exists():
        return np.load(cache)
    features = hpcp(read_mono(audio, PROTOCOL.sample_rate), PROTOCOL)
    if cache is not None:
        with atomic_output(cache) as tmp, open(tmp, "wb") as handle:
            np.save(handle, features)
    return features


def distance(pick: np.ndarray, original: np.ndarray, max_frames: int) -> float:
    """Qmax of a pick's native chroma against an original's, both pooled by the original's factor."""
    factor = pool_factor(len(original), max_frames)
    return qmax(pool_frames(pick, factor), pool_frames(original, factor)).qmax


def sample_others(song: Song, candidates: list[tuple[Song, SongFolder]], count: int) -> list[tuple[Song, SongFolder]]:
    """Up to `count` other songs, the same ones every time for this song (ordered by a hash of both ids)."""
    def key(other: tuple[Song, SongFolder]) -> str:
        return hashlib.sha256(f"{song.id}:{other[0].id}".encode()).hexdigest()

    return sorted((c for c in candidates if c[0].id != song.id), key=key)[:count]


def check_identity(song: Song, pick_audio: Path, out_dir: Path, songs: list[Song], settings: IdentitySettings) -> Identity:
    """Compare the pick (its rendered audio) with its own original and a sample of the others'."""
    own_folder = SongFolder(out_dir, song.id)
    pick = native_chroma(pick_audio)
    own = distance(pick, native_chroma(own_folder.audio, own_folder.original_chroma), settings.max_frames)
    pool = [(other, SongFolder(out_dir, other.id)) for other in songs]
    pool = [(other, folder) for other, folder in pool if folder.audio.exists()]
    compared = []
    for other, folder in sample_others(song, pool, settings.others):
        original = native_chroma(folder.audio, folder.original_chroma)
        compared.append(Comparison(song_id=other.id, title=other.title, qmax=distance(pick, original, settings.max_frames)))
    compared.sort(key=lambda c: (c.qmax, c.song_id))
    if not compared:
        return Identity(own=own, others=[], held=False, reason="no other song in the work folder to compare with")
    nearest = compared[0]
    if nearest.qmax <= own:
        reason = (f"the pick is as near or nearer to {nearest.title!r} (Qmax {nearest.qmax:.3f}) than to its own "
                  f"original (Qmax {own:.3f}): it may not be recognisable; a person may still approve it")
        return Identity(own=own, others=compared, held=True, reason=reason)
    return Identity(own=own, others=compared, held=False,
                    reason=f"nearest its own original (Qmax {own:.3f}) of {len(compared) + 1} songs; next {nearest.qmax:.3f}")
