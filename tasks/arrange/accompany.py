"""accompany: the left hand rebuilt from the harmony, as a pianist would play it.

The notes below `split` (what a transcription hears of the bass, the pads and the drums' pitched
overtones) are replaced. For every beat, half-bar or bar of the song's grid, the chord sounding
there is read from the transcription (every note sounding in it, weighted by length and loudness,
matched against major, minor and seventh chords, the lowest note deciding between inversions),
or from the song's own chords (the analysis's chord detection on the audio's chroma) where the
transcription is sparse: the ambient pads and drones a note transcriber barely hears. The left hand
then plays that chord in a pattern: `block` chords, `broken` (the bass, then the chord on the
following beats), an `arpeggio` (bass, fifth, octave, fifth in eighths), `alberti` (bass, fifth,
third, fifth), the bass in `octaves`, or the `bass` alone. Its notes belong to the left hand.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import Field

from covermill.models.notes import Note, sort_notes
from covermill.tasks.arrange.quantise import grid_for
from covermill.tasks.arrange.registry import StepContext, register
from covermill.tasks.arrange.steps import resolve_same_pitch
from covermill.tasks.core.music import LEFT, RIGHT, BeatGrid, Piece
from covermill.tasks.core.settings import Settings

# chord qualities as intervals above the root
QUALITIES: dict[str, tuple[int, ...]] = {"": (0, 4, 7), "m": (0, 3, 7), "7": (0, 4, 7, 10), "m7": (0, 3, 7, 10)}
NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


class Chord(NamedTuple):
    root: int  # pitch class, 0 = C
    intervals: tuple[int, ...]  # semitones above the root, one of QUALITIES

    @property
    def name(self) -> str:
        quality = next(q for q, i in QUALITIES.items() if i == self.intervals)
        return NAMES[self.root] + quality


def chord(root: int, quality: str = "") -> Chord:
    return Chord(root % 12, QUALITIES[quality])


class AccompanyParams(Settings):
    pattern: Literal["block", "broken", "arpeggio", "alberti", "bass", "octaves"] = "broken"
    every: Literal["beat", "half-bar", "bar"] = "half-bar"  # how often the harmony is read
    split: int = Field(55, ge=30, le=84)  # the left hand's notes lie below this (G3); the ones there are replaced
    bass_low: int = Field(36, ge=21, le=60)  # the bass note lies in bass_low .. bass_low + 11 (C2 .. B2)
    velocity: int = Field(64, ge=1, le=127)  # the bass's; the chord tones are a little softer
    chords_from: Literal["auto", "notes", "audio"] = "auto"  # auto: the audio's chords where the notes are sparse
    sparse_below: float = Field(2.0, ge=0.0)  # notes a second under which a stretch counts as sparse
    min_fit: float = Field(0.5, ge=0.0, le=1.0)  # share of the weight a chord must explain to be taken from the notes


def chord_of(notes: list[Note], start: float, end: float) -> tuple[Chord | None, float]:
    """The chord the notes sounding in [start, end) fit best, and the share of their weight (length x
    loudness) its tones hold; (None, 0.0) when nothing sounds. The lowest note breaks ties towards
    the chord it is the root of."""
    weights = np.zeros(12)
    lowest: Note | None = None
    for note in notes:
        overlap = min(note.end, end) - max(note.start, start)
        if overlap > 0:
            weights[note.pitch % 12] += overlap * note.velocity
            if lowest is None or note.pitch < lowest.pitch:
                lowest = note
    total = weights.sum()
    if total <= 0:
        return None, 0.0
    best, best_score, best_share = None, -np.inf, 0.0
    for root in range(12):
        for quality, intervals in QUALITIES.items():
            tones = [(root + i) % 12 for i in intervals]
            share = weights[tones].sum() / total
            # a seventh must earn its extra tone; the lowest note as root settles inversions
            score = share - 0.08 * (len(tones) - 3) + (0.05 if lowest is not None and lowest.pitch % 12 == root else 0.0)
            if score > best_score:
                best, best_score, best_share = chord(root, quality), score, share
    return best, float(best_share)


def audio_chord(analysis: Any, time: float) -> Chord | None:
    """The analysis's chord at `time` (its `chord_at(time)` -> (root, pitch classes) or None), as a Chord."""
    chord_at = getattr(analysis, "chord_at", None)
    found = chord_at(time) if chord_at is not None else None
    if not found:
        return None
    root, classes = found
    intervals = tuple(sorted((c - root) % 12 for c in classes))
    for quality, known in QUALITIES.items():
        if intervals == known:
            return chord(root, quality)
    return chord(root, "m" if 3 in intervals and 4 not in intervals else "")


def segments(grid: BeatGrid, every: str, end: float) -> list[tuple[float, float, list[float]]]:
    """(start, end, beat times inside) of every stretch the harmony is read over, covering the grid's
    beats up to `end` (the last note's end); bars start at the downbeats (a pickup is a stretch)."""
    beats = [b for b in grid.times.tolist() if b < end]
    if not beats:
        return []
    per = {"beat": 1, "bar": grid.beats_per_bar,
           "half-bar": grid.beats_per_bar // 2 if grid.beats_per_bar % 2 == 0 else grid.beats_per_bar}[every]
    period = float(np.median(np.diff(grid.times)))
    edges = [i for i in range(len(beats)) if (i - grid.first_downbeat) % per == 0 or i == 0]
    out = []
    for n, first in enumerate(edges):
        last = edges[n + 1] if n + 1 < len(edges) else len(beats)
        stop = beats[last] if last < len(beats) else beats[-1] + period
        out.append((beats[first], stop, beats[first:last]))
    return out


def voicing(c: Chord, bass_low: int, split: int) -> tuple[int, list[int]]:
    """(bass pitch, chord tones above it within an octave and a third, under `split` where possible)."""
    bass = bass_low + (c.root - bass_low) % 12
    tones = [bass + i for i in c.intervals[1:]]
    return bass, [t - 12 if t >= split and t - 12 > bass else t for t in tones]


def pattern_notes(c: Chord, start: float, end: float, beats: list[float], p: AccompanyParams, eighth: float) -> list[Note]:
    """The left hand's notes for one stretch (seconds), in the style's pattern."""
    bass, tones = voicing(c, p.bass_low, p.split)
    soft = max(1, p.velocity - 8)
    out: list[Note] = []
    if p.pattern == "block":
        out = [Note(start, end, q, p.velocity if q == bass else soft, LEFT) for q in [bass, *tones]]
    elif p.pattern == "bass":
        out = [Note(start, end, bass, p.velocity, LEFT)]
    elif p.pattern == "octaves":
        out = [Note(start, end, bass, p.velocity, LEFT), Note(start, end, bass + 12, soft, LEFT)]
    elif p.pattern == "broken":
        out = [Note(start, end, bass, p.velocity, LEFT)]
        hits = beats[1:] if len(beats) > 1 else [start + (end - start) / 2]
        for n, hit in enumerate(hits):
            stop = hits[n + 1] if n + 1 < len(hits) else end
            out += [Note(hit, stop, q, soft, LEFT) for q in tones]
    else:  # arpeggio, alberti: one tone an eighth, in a cycle
        fifth = bass + 7
        third = tones[0] if tones else bass + 4
        cycle = [bass, fifth, bass + 12, fifth] if p.pattern == "arpeggio" else [bass, fifth, third, fifth]
        times = np.arange(start, end - 1e-6, eighth)
        for n, t in enumerate(times.tolist()):
            stop = min(end, t + eighth)
            out.append(Note(t, stop, cycle[n % len(cycle)], p.velocity if n == 0 else soft, LEFT))
    return out


@register("accompany", AccompanyParams, on_piece=True)
def accompany(piece: Piece, p: AccompanyParams, context: StepContext) -> Piece:
    if not piece.notes:
        return piece
    grid = grid_for(piece)
    end = max(n.end for n in piece.notes)
    eighth = 60.0 / grid.tempo / (3 if grid.steps_per_beat % 3 == 0 else 2)
    left: list[Note] = []
    for start, stop, beats in segments(grid, p.every, end):
        sounding = [n for n in piece.notes if n.start < stop and n.end > start]
        found, fit = chord_of(sounding, start, stop) if p.chords_from != "audio" else (None, 0.0)
        sparse = len([n for n in sounding if start <= n.start < stop]) / max(stop - start, 1e-6) < p.sparse_below
        if p.chords_from == "audio" or (p.chords_from == "auto" and (found is None or sparse or fit < p.min_fit)):
            found = audio_chord(context.analysis, start) or (found if fit >= p.min_fit else None)
        if found is not None:
            left += pattern_notes(found, start, stop, beats, p, eighth)
    right = [n for n in piece.notes if n.pitch >= p.split or n.hand == RIGHT]
    return replace(piece, notes=resolve_same_pitch(sort_notes(right + left)), grid=piece.grid or grid)
