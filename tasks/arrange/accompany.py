"""accompany: the left hand rebuilt from the harmony, as a pianist would play it.

The notes below `split` (what a transcription hears of the bass, the pads and the drums' pitched
overtones) are replaced. For every beat, half-bar or bar of the song's grid, the chord sounding
there is read from the transcription (the pitch classes carrying most of the weight of the notes
sounding in it, the bass's strongest as the root), or from the song's own chords (the analysis's chord detection on the audio's chroma) where the
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
TONE_SHARE = 0.15  # a pitch class is a chord tone with at least this share of the strongest one's weight
MAX_TONES = 4


class Chord(NamedTuple):
    root: int  # pitch class, 0 = C
    intervals: tuple[int, ...]  # semitones above the root, 0 first

    @property
    def name(self) -> str:
        """"C", "Am", "G7", ...; a chord no quality names lists its intervals: "D(0,5,7)"."""
        quality = next((q for q, i in QUALITIES.items() if i == self.intervals), None)
        return NAMES[self.root] + (quality if quality is not None else f"({','.join(map(str, self.intervals))})")


def chord(root: int, quality: str = "") -> Chord:
    return Chord(root % 12, QUALITIES[quality])


class AccompanyParams(Settings):
    pattern: Literal["block", "broken", "arpeggio", "alberti", "bass", "octaves"] = "broken"
    every: Literal["beat", "half-bar", "bar"] = "half-bar"  # how often the harmony is read
    # the left hand's notes lie below this (C3); the ones there are replaced. Higher lost the tenor
    # register's own notes: G3 dropped the tuning songs' median aligned share from 0.64 to 0.51
    split: int = Field(48, ge=30, le=84)
    bass_low: int = Field(36, ge=21, le=60)  # the bass note lies in bass_low .. bass_low + 11 (C2 .. B2)
    velocity: int = Field(64, ge=1, le=127)  # the bass's; the chord tones are a little softer
    chords_from: Literal["auto", "notes", "audio"] = "auto"  # auto: the audio's chords where the notes are sparse
    sparse_below: float = Field(2.0, ge=0.0)  # notes a second under which a stretch counts as sparse
    min_fit: float = Field(0.5, ge=0.0, le=1.0)  # share of the weight a chord must explain to be taken from the notes


def chord_of(notes: list[Note], start: float, end: float, split: int = 48) -> tuple[Chord | None, float]:
    """The chord sounding in [start, end) as the notes play it, and the share of their weight
    (length x loudness) its tones hold; (None, 0.0) when nothing sounds.

    Its tones are the pitch classes that carry the most weight (up to four, each at least
    TONE_SHARE of the strongest), not a textbook chord: band music is full of suspensions,
    added tones and power chords a major/minor template would misname (on the tuning songs the
    notes' own tones kept the median aligned share at 0.64, templates dropped it to 0.47). The root
    is the bass actually played: of the pitch classes below `split` with at least half the
    strongest one's weight, the one played lowest; with nothing below `split`, the strong class over
    which the others form a known chord, else the strongest."""
    weights = np.zeros(12)
    low = np.zeros(12)
    lowest: dict[int, int] = {}  # pitch class -> its lowest pitch below split
    for note in notes:
        overlap = min(note.end, end) - max(note.start, start)
        if overlap > 0:
            weights[note.pitch % 12] += overlap * note.velocity
            if note.pitch < split:
                low[note.pitch % 12] += overlap * note.velocity
                lowest[note.pitch % 12] = min(note.pitch, lowest.get(note.pitch % 12, 128))
    total = weights.sum()
    if total <= 0:
        return None, 0.0
    strong = [int(c) for c in np.argsort(-weights, kind="stable") if weights[c] >= TONE_SHARE * weights.max()][:MAX_TONES]
    if low.sum() > 0:  # the bass: of the low classes with half the strongest one's weight, the lowest played
        root = min((c for c in lowest if low[c] >= 0.5 * low.max()), key=lambda c: lowest[c])
    else:  # no bass: the strong class over which the others make a known chord, else the strongest
        known = set(QUALITIES.values())
        root = next((c for c in strong if tuple(sorted({(o - c) % 12 for o in strong})) in known), strong[0])
    tones = sorted({(c - root) % 12 for c in strong} | {0})[:MAX_TONES]
    classes = [(root + i) % 12 for i in tones]
    return Chord(root, tuple(tones)), float(weights[classes].sum() / total)


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


def pattern_notes(c: Chord, start: float, end: float, beats: list[float], p: AccompanyParams,
                  eighths: list[float]) -> list[Note]:
    """The left hand's notes for one stretch (seconds), in the style's pattern; `eighths` are the
    stretch's grid eighths (seconds; eighth triplets in triplet time), the onsets an arpeggio or Alberti
    bass steps through and where a broken chord over one beat is struck."""
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
        # a one-beat stretch has the chord on its last grid eighth: the half beat in straight time, the
        # third triplet in triplet time (the half beat there was off the song's grid: a 12/8 ballad's
        # score then mixed eighths into triplets, 3.3 % of its notes off the written grid)
        hits = beats[1:] if len(beats) > 1 else [eighths[-1] if len(eighths) > 1 else start + (end - start) / 2]
        for n, hit in enumerate(hits):
            stop = hits[n + 1] if n + 1 < len(hits) else end
            out += [Note(hit, stop, q, soft, LEFT) for q in tones]
    else:  # arpeggio, alberti: one tone an eighth, in a cycle
        fifth = bass + 7
        third = tones[0] if tones else bass + 4
        cycle = [bass, fifth, bass + 12, fifth] if p.pattern == "arpeggio" else [bass, fifth, third, fifth]
        for n, t in enumerate(eighths):
            stop = eighths[n + 1] if n + 1 < len(eighths) else end
            out.append(Note(t, stop, cycle[n % len(cycle)], p.velocity if n == 0 else soft, LEFT))
    return out


def eighths_in(grid: BeatGrid, start: float, end: float, per_beat: int) -> list[float]:
    """Onsets (seconds) every 1/`per_beat` of a beat along the grid from `start` to before `end`: on
    the tracked beats, so that an arpeggio keeps to the song's own beat where the tempo moves (a
    fixed period drifted off it: 14 and 51-tick steps in a 960-tick score)."""
    first, last = grid.beat_position(np.array([start, end])).tolist()
    positions = np.arange(first, last - 1e-6, 1.0 / per_beat)
    return grid.seconds_at(positions).tolist()


@register("accompany", AccompanyParams, on_piece=True)
def accompany(piece: Piece, p: AccompanyParams, context: StepContext) -> Piece:
    if not piece.notes:
        return piece
    grid = grid_for(piece)
    end = max(n.end for n in piece.notes)
    per_beat = 3 if grid.steps_per_beat % 3 == 0 else 2  # eighth triplets or eighths
    stepping = p.pattern in ("arpeggio", "alberti", "broken")  # the patterns that place notes on eighths
    left: list[Note] = []
    for start, stop, beats in segments(grid, p.every, end):
        sounding = [n for n in piece.notes if n.start < stop and n.end > start]
        # the harmony is what sounds under the tune: the melody's passing notes are not chord tones
        harmony = [n for n in sounding if n.hand != RIGHT] or sounding
        found, fit = chord_of(harmony, start, stop, p.split) if p.chords_from != "audio" else (None, 0.0)
        sparse = len([n for n in sounding if start <= n.start < stop]) / max(stop - start, 1e-6) < p.sparse_below
        if p.chords_from == "audio" or (p.chords_from == "auto" and (found is None or sparse or fit < p.min_fit)):
            found = audio_chord(context.analysis, start) or (found if fit >= p.min_fit else None)
        if found is not None:
            eighths = eighths_in(grid, start, stop, per_beat) if stepping else []
            left += pattern_notes(found, start, stop, beats, p, eighths)
    right = [n for n in piece.notes if n.pitch >= p.split or n.hand == RIGHT]
    return replace(piece, notes=resolve_same_pitch(sort_notes(right + left)), grid=piece.grid or grid)
