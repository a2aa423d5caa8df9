"""Garbage a generator really produces, injected into a good candidate to see the ranking refuse it.

Each function takes a good candidate's notes and the song's length and returns a corrupted copy;
the same inputs always give the same notes (random ones take a seed).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from covermill.models.notes import Note, sort_notes


def most_sounded_pitch(notes: list[Note]) -> int:
    """The pitch that sounds longest in total (usually the tonic or the bass's home note)."""
    weights: Counter[int] = Counter()
    for note in notes:
        weights[note.pitch] += note.end - note.start
    return weights.most_common(1)[0][0] if weights else 60


def banged_segment(notes: list[Note], duration: float, share: float = 0.25, interval: float = 0.2) -> list[Note]:
    """The middle `share` of the song replaced by one pitch struck every `interval` seconds."""
    begin = duration * (0.5 - share / 2)
    end = begin + duration * share
    pitch = most_sounded_pitch(notes)
    kept = [n for n in notes if not begin <= n.start < end]
    strikes = [Note(t, t + interval * 0.9, pitch, 90) for t in np.arange(begin, end, interval).tolist()]
    return sort_notes(kept + strikes)


def dropouts(notes: list[Note], duration: float, share: float = 0.4, count: int = 2) -> list[Note]:
    """`count` evenly spread silences, `share` of the song in all, where every note is dropped."""
    gap = duration * share / count
    spacing = duration / count
    gaps = [(spacing * (i + 0.5) - gap / 2, spacing * (i + 0.5) + gap / 2) for i in range(count)]
    return [n for n in notes if not any(a <= n.start < b for a, b in gaps)]


def random_pitches(notes: list[Note], seed: int = 0, share: float = 0.5, low: int = 36, high: int = 96) -> list[Note]:
    """The rhythm kept, but `share` of the notes moved to a random pitch in low..high."""
    rng = np.random.default_rng(seed)
    out = []
    for note in notes:
        if rng.random() < share:
            note = note._replace(pitch=int(rng.integers(low, high + 1)))
        out.append(note)
    return sort_notes(out)


def stretched(foreign: list[Note], duration: float) -> list[Note]:
    """Another song's notes stretched (or squeezed) in time to span this song's length."""
    if not foreign:
        return []
    span = max(n.end for n in foreign)
    factor = duration / span if span > 0 else 1.0
    return sort_notes([n._replace(start=n.start * factor, end=n.end * factor) for n in foreign])


def corruptions(notes: list[Note], duration: float, foreign: list[Note] | None) -> dict[str, list[Note]]:
    """Every kind of garbage made from one good candidate; `foreign` is another song's candidate."""
    made = {
        "banged segment": banged_segment(notes, duration),
        "dropouts": dropouts(notes, duration),
        "random notes": random_pitches(notes),
    }
    if foreign:
        made["other song stretched"] = stretched(foreign, duration)
    return made
