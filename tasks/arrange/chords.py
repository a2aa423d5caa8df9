"""The song's harmony: a chord per beat and the key, from the HPCP chroma (tasks/arrange/spectra.py).

essentia's ChordsDetectionBeats takes the median chroma between consecutive beats and names the
major or minor triad it fits best ("C", "F#m", "Bb"); a stretch with no chroma (silence) is "N".
The key is essentia's Key on the song's mean chroma (Temperley's "bgate" profile), e.g. "A minor".
Labels may also carry the qualities of `QUALITIES` ("G7", "Fmaj7", "Bdim"); `pitch_classes` reads
any of them.
"""

from __future__ import annotations

import numpy as np

from covermill.models.audio import essentia_standard
from covermill.tasks.arrange.spectra import RATE, Frames

NO_CHORD = "N"
ROOTS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
QUALITIES: dict[str, tuple[int, ...]] = {
    "": (0, 4, 7), "m": (0, 3, 7), "7": (0, 4, 7, 10), "maj7": (0, 4, 7, 11), "m7": (0, 3, 7, 10),
    "dim": (0, 3, 6), "dim7": (0, 3, 6, 9), "m7b5": (0, 3, 6, 10), "aug": (0, 4, 8), "sus2": (0, 2, 7),
    "sus4": (0, 5, 7), "6": (0, 4, 7, 9), "m6": (0, 3, 7, 9), "5": (0, 7),
}


def parse_chord(label: str) -> tuple[int, frozenset[int]] | None:
    """(root pitch class, pitch classes) of a chord label ("C", "Am", "F#m7", "Bbmaj7", "Ebdim"); None
    for "N" (no chord). ValueError for a label it cannot read."""
    text = label.strip()
    if text in ("", NO_CHORD):
        return None
    if text[0].upper() not in ROOTS:
        raise ValueError(f"not a chord label: {label!r}")
    root, rest = ROOTS[text[0].upper()], text[1:]
    while rest[:1] in ("#", "b"):
        root += 1 if rest[0] == "#" else -1
        rest = rest[1:]
    if rest not in QUALITIES:
        raise ValueError(f"unknown chord quality {rest!r} in {label!r}")
    return root % 12, frozenset((root + i) % 12 for i in QUALITIES[rest])


def pitch_classes(label: str) -> frozenset[int]:
    """The pitch classes (0 = C) of a chord label; empty for "N"."""
    found = parse_chord(label)
    return found[1] if found else frozenset()


def beat_chords(frames: Frames, beats: np.ndarray, end: float) -> tuple[list[str], list[float]]:
    """(label, strength) for each beat (k,): the chord from that beat to the next (the last one to
    `end`, or one beat on)."""
    es = essentia_standard()

    if len(beats) == 0:
        return [], []
    period = float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
    ticks = np.append(beats, max(end, beats[-1] + period) if end > beats[-1] else beats[-1] + period)
    if len(frames.times) == 0:
        return [NO_CHORD] * len(beats), [0.0] * len(beats)
    labels, strengths = es.ChordsDetectionBeats(hopSize=int(round(frames.hop_seconds * RATE)), sampleRate=RATE,
                                                chromaPick="interbeat_median")(frames.hpcp, ticks.astype(np.float32))
    labels, strengths = list(labels)[: len(beats)], [float(s) for s in strengths][: len(beats)]
    labels += [NO_CHORD] * (len(beats) - len(labels))
    strengths += [0.0] * (len(beats) - len(strengths))
    silent = _silent_beats(frames, ticks)
    return [NO_CHORD if quiet else label for label, quiet in zip(labels, silent)], \
        [0.0 if quiet else s for s, quiet in zip(strengths, silent)]


def _silent_beats(frames: Frames, ticks: np.ndarray) -> np.ndarray:
    """(k,) True where no frame between ticks i and i + 1 has any chroma."""
    energy = np.concatenate([[0.0], np.cumsum(frames.hpcp.sum(axis=1))])
    starts = np.clip(np.searchsorted(frames.times, ticks[:-1]), 0, len(frames.times))
    stops = np.clip(np.searchsorted(frames.times, ticks[1:]), 0, len(frames.times))
    return (energy[stops] - energy[starts]) <= 1e-6


def song_key(frames: Frames) -> str:
    """"C major", "A minor", ...; "" when the audio has no chroma."""
    es = essentia_standard()

    if len(frames.hpcp) == 0 or frames.hpcp.sum() <= 0:
        return ""
    key, scale, *_ = es.Key(profileType="bgate", pcpSize=frames.hpcp.shape[1])(frames.hpcp.mean(axis=0).astype(np.float32))
    return f"{key} {scale}"
