"""A piece of piano music as bars of note values: what a score shows.

Time is counted in grid steps: each beat of the song's grid split `steps` ways (4 in straight time:
sixteenths; 3 in triplet time: eighth triplets), step 0 on the grid's first beat. Onsets and ends
go to the nearest step (a raw transcription's timing included), every note lasts at least one step.
Each hand is a staff of at most two voices; a note is cut where the same key is struck again and a
voice ends where the next chord of that voice begins. Within a bar a note value never hides a beat:
a note off the beat runs to the next beat (the rest tied over), one on the beat takes the longest
plain or dotted value that fits; bar lines tie too. Rests fill each bar of the first voice; the
second voice's gaps are hidden rests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from covermill.models.notes import Note
from covermill.tasks.core.music import LEFT, RIGHT, BeatGrid

ARRANGER = "covermill"  # the score's arranger, in its header
MIDDLE_C = 60  # a note without a hand goes to the right hand from here up
VOICES_PER_STAFF = 2
# Whole-beat note values a note on the beat may take, in beats: quarter, dotted quarter, half,
# dotted half, whole, dotted whole (in triplet time the dotted quarter is off the grid).
BEAT_VALUES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
TEMPO_CHANGE = 0.08  # a new tempo mark where two bars in a row move this far (8 %) from the last one

# Krumhansl-Kessler key profiles (Krumhansl 1990), C major and C minor, for a piece without a key.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PITCH_CLASS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


@dataclass(frozen=True)
class Event:
    """One note value of one voice in one bar: a chord (a single note is a chord of one) or a rest."""

    offset: int  # steps from the bar's start
    length: int  # steps
    pitches: tuple[int, ...] = ()  # MIDI numbers, low to high; () is a rest
    tie_start: bool = False  # every pitch is held into the next event of the voice
    tie_stop: bool = False  # every pitch was held from the previous one
    hidden: bool = False  # a rest in the second voice: space, not a printed rest


@dataclass(frozen=True)
class Bar:
    start: int  # step of the bar's first beat
    length: int  # steps (a pickup bar is shorter than the others)
    voices: dict[tuple[int, int], list[Event]] = field(default_factory=dict)  # (staff 1|2, voice 1|2) -> events


@dataclass(frozen=True)
class Notation:
    """Everything the MusicXML writer needs: bars, meter, key, tempo marks, clefs."""

    bars: list[Bar]
    steps: int  # steps per beat: 4 straight, 3 triplets
    beats_per_bar: int
    fifths: int  # key signature: sharps (> 0) or flats (< 0)
    mode: str  # "major" or "minor"
    tempi: list[tuple[int, int]]  # (bar index, quarter notes a minute), the first at bar 0
    clefs: tuple[str, str]  # staff 1 and staff 2: "treble" or "bass"

    @property
    def pickup(self) -> bool:
        return bool(self.bars) and self.bars[0].length < self.beats_per_bar * self.steps


def to_steps(times: np.ndarray, grid: BeatGrid, steps: int) -> np.ndarray:
    """(n,) seconds -> (n,) int nearest grid steps (0 at the grid's first beat; before it and after the
    last beat the grid's first and last beat lengths continue)."""
    return np.round(grid.beat_position(np.asarray(times, dtype=float)) * steps).astype(np.int64)


def subdivision(positions: np.ndarray, preferred: int) -> int:
    """Steps per beat for onsets at `positions` (n,) beats: `preferred` (the song's), unless the other of
    4 and 3 holds clearly more of them (5 points) within a 48th of a beat: a style may write sixteenths
    on a song in triplets."""
    if preferred not in (3, 4) or not len(positions):
        return preferred

    def on_grid(steps: int) -> float:
        return float(np.mean(np.abs(positions * steps - np.round(positions * steps)) < steps / 48))

    other = 7 - preferred
    return other if on_grid(other) > on_grid(preferred) + 0.05 else preferred


def quantise(starts: np.ndarray, ends: np.ndarray, grid: BeatGrid, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(onsets (n,), lengths (n,)) in steps of notes `starts`..`ends` (n,) seconds; lengths >= 1."""
    onsets = to_steps(starts, grid, steps)
    return onsets, np.maximum(to_steps(ends, grid, steps) - onsets, 1)


def cut_repeats(onsets: np.ndarray, lengths: np.ndarray, pitches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Notes of one hand (n,) with no key struck while it still sounds: (keep (n,) bool, lengths (n,)).

    A note is cut at the next onset of its pitch; of notes with one pitch and onset the longest is kept."""
    keep = np.ones(len(onsets), dtype=bool)
    lengths = np.array(lengths, dtype=np.int64)
    previous = -1
    for i in np.lexsort((-lengths, onsets, pitches)).tolist():  # by pitch, then onset, longest first
        if previous >= 0 and pitches[previous] == pitches[i]:
            if onsets[previous] == onsets[i]:
                keep[i] = False
                continue
            lengths[previous] = min(lengths[previous], onsets[i] - onsets[previous])
        previous = i
    return keep, lengths


def assign_voices(onsets: np.ndarray, lengths: np.ndarray, voices: int = VOICES_PER_STAFF) -> tuple[np.ndarray, np.ndarray]:
    """(voice (n,) 0-based, lengths (n,)) for one staff's notes: notes of one onset and length are a chord
    of one voice; a chord takes the first voice free at its onset. When none is free, it joins a voice's
    chord of the same onset (at that chord's length) or cuts short the chord that ends first."""
    voice = np.zeros(len(onsets), dtype=np.int64)
    lengths = np.array(lengths, dtype=np.int64)
    ends = [np.iinfo(np.int64).min] * voices
    last: list[np.ndarray | None] = [None] * voices  # each voice's latest chord (note indices)
    order = np.lexsort((-lengths, onsets))
    keys = np.stack([onsets[order], lengths[order]], axis=1)
    cuts = np.flatnonzero(np.any(np.diff(keys, axis=0) != 0, axis=1)) + 1
    for chord in np.split(order, cuts):
        onset, length = int(onsets[chord[0]]), int(lengths[chord[0]])
        free = [v for v in range(voices) if ends[v] <= onset]
        if free:
            v = free[0]
        else:
            same = [v for v in range(voices) if last[v] is not None and onsets[last[v][0]] == onset]
            if same:
                v = same[0]
                lengths[chord] = lengths[last[v][0]]
                voice[chord] = v
                last[v] = np.concatenate([last[v], chord])
                continue
            v = int(np.argmin(ends))
            lengths[last[v]] = onset - onsets[last[v][0]]
        voice[chord] = v
        last[v] = chord
        ends[v] = onset + length
    return voice, lengths


def bar_lines(first: int, last: int, first_downbeat: int, beats_per_bar: int, steps: int) -> np.ndarray:
    """(m + 1,) steps where bars begin, and where the last ends, covering steps `first` .. `last`
    (exclusive): bar lines on the downbeats (beat first_downbeat + k * beats_per_bar), before the first
    of them a pickup bar from the beat at or before `first`."""
    bar = beats_per_bar * steps
    start = (first // steps) * steps
    downbeat = first_downbeat * steps + -(-(start - first_downbeat * steps) // bar) * bar  # the first at or after start
    lines = np.arange(downbeat, max(last, downbeat + 1) + bar, bar)
    lines = lines[: int(np.searchsorted(lines, max(last, downbeat + 1))) + 1]
    return np.concatenate([[start], lines]) if downbeat > start else lines


def beat_values(steps: int) -> tuple[int, ...]:
    """Lengths in steps, longest first, that a note on the beat may take as one value."""
    return tuple(sorted((int(v * steps) for v in BEAT_VALUES if float(v * steps).is_integer()), reverse=True))


def split_value(offset: int, length: int, steps: int) -> list[int]:
    """Lengths (steps) of the tied note values of a note `offset` steps into a bar, `length` steps long,
    ending at or before the bar line: off the beat up to the next beat, on it the longest value that fits
    (module docstring). Every sub-beat length is a plain, dotted or triplet value."""
    values = beat_values(steps)
    parts = []
    while length > 0:
        into_beat = offset % steps
        if into_beat or length < steps:
            part = min(length, steps - into_beat)
        else:
            part = next(v for v in values if v <= length)
        parts.append(part)
        offset += part
        length -= part
    return parts


def _voice_events(chords: list[tuple[int, int, tuple[int, ...]]], lines: np.ndarray, steps: int, hidden_rests: bool) -> list[list[Event]]:
    """One voice's events in every bar (bars between `lines`), rests filling the gaps; [] for a bar the
    voice is silent in, when its rests are hidden."""
    bars: list[list[Event]] = [[] for _ in range(len(lines) - 1)]
    for onset, length, pitches in chords:
        end, first_part = onset + length, True
        index = int(np.searchsorted(lines, onset, side="right")) - 1
        while onset < end and index < len(bars):
            stop = min(end, int(lines[index + 1]))
            offset = onset - int(lines[index])
            for part in split_value(offset, stop - onset, steps):
                last_part = offset + part + int(lines[index]) >= end
                bars[index].append(Event(offset, part, pitches, tie_start=not last_part, tie_stop=not first_part))
                offset += part
                first_part = False
            onset, index = stop, index + 1
    filled = []
    for index, events in enumerate(bars):
        length = int(lines[index + 1] - lines[index])
        if not events:
            filled.append([] if hidden_rests else [Event(0, length)])
            continue
        with_rests, cursor = [], 0
        for event in events + [Event(length, 0)]:
            if event.offset > cursor:
                for part in split_value(cursor, event.offset - cursor, steps):
                    with_rests.append(Event(cursor, part, hidden=hidden_rests))
                    cursor += part
            if event.length:
                with_rests.append(event)
                cursor = event.offset + event.length
        filled.append(with_rests)
    return filled


def key_signature(key: str, pitches: np.ndarray, weights: np.ndarray) -> tuple[int, str]:
    """(fifths, mode) of `key` ("C major", "F# minor", "Bb major"), else estimated from the notes'
    pitch classes (n,) weighted by their lengths (n,) against Krumhansl-Kessler's profiles."""
    found = re.fullmatch(r"\s*([A-Ga-g])([#b]?)\s+(major|minor)\s*", key or "")
    if found:
        tonic = (PITCH_CLASS[found.group(1).upper()] + {"#": 1, "b": -1, "": 0}[found.group(2)]) % 12
        mode = found.group(3)
    elif len(pitches):
        histogram = np.bincount(np.asarray(pitches) % 12, weights=np.asarray(weights, dtype=float), minlength=12)
        scores = [(np.corrcoef(histogram, np.roll(profile, shift))[0, 1], shift, mode)
                  for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)) for shift in range(12)]
        _, tonic, mode = max(scores, key=lambda s: (np.nan_to_num(s[0], nan=-2.0), s[2] == "major"))
    else:
        return 0, "major"
    major = tonic if mode == "major" else (tonic + 3) % 12
    fifths = (major * 7) % 12  # steps round the circle of fifths from C
    return (fifths - 12 if fifths > 6 else fifths), mode  # F# major has six sharps, Db major five flats


def tempo_marks(lines: np.ndarray, grid: BeatGrid, steps: int) -> list[tuple[int, int]]:
    """(bar index, BPM) marks: the first bar's tempo, then a new mark where two bars in a row differ from
    the last mark by more than TEMPO_CHANGE."""
    seconds = grid.seconds_at(lines / steps)
    bpm = 60.0 * np.diff(lines / steps) / np.maximum(np.diff(seconds), 1e-6)
    marks = [(0, int(round(float(np.median(bpm[: min(len(bpm), 4)])))))]
    for index in range(1, len(bpm) - 1):
        current = marks[-1][1]
        if all(abs(b - current) > TEMPO_CHANGE * current for b in bpm[index : index + 2]):
            marks.append((index, int(round(float(bpm[index])))))
    return marks


def _clef(pitches: list[int], default: str) -> str:
    if not pitches:
        return default
    middle = float(np.median(pitches))
    if default == "treble":
        return "bass" if middle < 55 else "treble"
    return "treble" if middle > 64 else "bass"


def notate(notes: list[Note], grid: BeatGrid, steps: int | None = None, key: str = "") -> Notation:
    """The bars of a piano score of `notes` on `grid` (module docstring): the right hand (and notes
    without a hand from middle C up) on staff 1, the left on staff 2; `steps` per beat, by default the
    grid's (or the other of 3 and 4 where the notes sit on it, `subdivision`); `key` as the song's analysis names it, else estimated."""
    starts = np.array([n.start for n in notes], dtype=float)
    steps = steps or subdivision(grid.beat_position(starts), grid.steps_per_beat)
    ends = np.array([n.end for n in notes], dtype=float)
    pitches = np.array([n.pitch for n in notes], dtype=np.int64)
    staff = np.array([1 if n.hand == RIGHT or (n.hand != LEFT and n.pitch >= MIDDLE_C) else 2 for n in notes], dtype=np.int64)
    onsets, lengths = quantise(starts, ends, grid, steps)
    first = int(min(onsets.min(initial=0), to_steps(np.array([0.0]), grid, steps)[0]))
    last = int((onsets + lengths).max(initial=first + 1))
    lines = bar_lines(first, last, grid.first_downbeat, grid.beats_per_bar, steps)
    bars = [Bar(int(a), int(b - a)) for a, b in zip(lines[:-1], lines[1:])]
    staff_pitches: dict[int, list[int]] = {1: [], 2: []}
    for number in (1, 2):
        mine = np.flatnonzero(staff == number)
        keep, cut = cut_repeats(onsets[mine], lengths[mine], pitches[mine])
        mine, cut = mine[keep], cut[keep]
        voice, cut = assign_voices(onsets[mine], cut)
        staff_pitches[number] = pitches[mine].tolist()
        for v in range(VOICES_PER_STAFF):
            chosen = voice == v
            chords: dict[tuple[int, int], list[int]] = {}
            for i, length in zip(mine[chosen].tolist(), cut[chosen].tolist()):
                chords.setdefault((int(onsets[i]), int(length)), []).append(int(pitches[i]))
            listed = [(o, n, tuple(sorted(set(p)))) for (o, n), p in sorted(chords.items())]
            if v > 0 and not listed:
                continue
            for bar, events in zip(bars, _voice_events(listed, lines, steps, hidden_rests=v > 0)):
                if events:
                    bar.voices[(number, v + 1)] = events
    fifths, mode = key_signature(key, pitches, lengths)
    return Notation(bars=bars, steps=steps, beats_per_bar=grid.beats_per_bar, fifths=fifths, mode=mode,
                    tempi=tempo_marks(lines, grid, steps),
                    clefs=(_clef(staff_pitches[1], "treble"), _clef(staff_pitches[2], "bass")))
