"""Defects a listener hears at once, measured on a candidate's notes.

The classic cover-generator failure is "banging the same note over and over": one pitch struck
again and again for a long stretch. Qmax alone can miss it, because a banged tonic still shares
chroma with the original. Other tell-tales: notes packed far too densely, one pitch class
dominating (low entropy), and long silences. And what no pianist can play: more keys down at
once than two hands hold, or notes beyond the 88 keys.
"""

from __future__ import annotations

import math
from collections import defaultdict

from covermill.models.notes import PIANO_HIGH, PIANO_LOW, Note, polyphony, sort_notes

RUN_GAP_SECONDS = 0.6  # a re-strike of the same pitch within this gap continues a run
REPEAT_WINDOW_SECONDS = 0.5  # a note whose pitch sounded an onset this recently is a repeat

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """Scientific pitch notation, MIDI 60 = C4."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _longest_run(notes: list[Note], run_gap: float) -> tuple[int, int, float, float]:
    """(strikes, pitch, first onset, last end) of the longest run of re-strikes of one pitch."""
    onsets: dict[int, list[Note]] = defaultdict(list)
    for note in notes:
        onsets[note.pitch].append(note)
    best = (0, -1, 0.0, 0.0)
    for pitch in sorted(onsets):
        run = onsets[pitch]
        first = 0
        for i in range(1, len(run) + 1):
            if i == len(run) or run[i].start - run[i - 1].start > run_gap:
                strikes = i - first
                if strikes > best[0]:
                    best = (strikes, pitch, run[first].start, max(n.end for n in run[first:i]))
                first = i
    return best


def _repeat_share(notes: list[Note], window: float) -> float:
    last_onset: dict[int, float] = {}
    repeats = 0
    for note in notes:
        previous = last_onset.get(note.pitch)
        if previous is not None and note.start - previous <= window:
            repeats += 1
        last_onset[note.pitch] = note.start
    return repeats / len(notes)


def _pitch_class_entropy(notes: list[Note]) -> float:
    """Shannon entropy in bits of the pitch classes weighted by how long they sound (0 to log2 12)."""
    weights = [0.0] * 12
    for note in notes:
        weights[note.pitch % 12] += max(note.end - note.start, 0.0)
    total = sum(weights)
    if total <= 0:
        return 0.0
    return max(0.0, -sum(w / total * math.log2(w / total) for w in weights if w > 0))


def _silences(notes: list[Note], duration: float) -> tuple[float, float]:
    """(longest stretch with no note sounding, total of such stretches) within [0, duration]."""
    longest = total = 0.0
    covered_until = 0.0
    for note in notes:  # onset order
        start = min(max(note.start, 0.0), duration)
        if start > covered_until:
            longest = max(longest, start - covered_until)
            total += start - covered_until
        covered_until = max(covered_until, min(note.end, duration))
    if duration > covered_until:
        longest = max(longest, duration - covered_until)
        total += duration - covered_until
    return longest, total


def measure_defects(
    notes: list[Note], duration: float, run_gap: float = RUN_GAP_SECONDS, repeat_window: float = REPEAT_WINDOW_SECONDS,
) -> dict[str, float]:
    """Numbers describing how a candidate sounds over a song of `duration` seconds.

    notes: how many; notes_per_second; longest_run: strikes in the longest run of one pitch
    re-struck within `run_gap` s of its previous strike, longest_run_pitch its MIDI pitch (-1 when
    none), longest_run_share the part of the song that run spans, longest_run_dominance the share
    of the notes struck while it lasts that are its strikes (a banged segment 1.0; an ostinato
    under a tune and chords much less); repeat_share: share of notes
    whose pitch had an onset within the previous `repeat_window` s; pitch_class_entropy: bits,
    duration-weighted (0 for one pitch class, 3.58 for all twelve equally); longest_silence:
    seconds, and silent_share: the part of the song where no note sounds; polyphony: most notes
    sounding at once; outside_piano: notes beyond A0..C8.
    """
    notes = sort_notes([Note(float(n.start), float(n.end), int(n.pitch), int(n.velocity)) for n in notes])
    duration = max(float(duration), max((n.end for n in notes), default=0.0), 1e-9)
    if not notes:
        return {
            "notes": 0.0, "notes_per_second": 0.0, "longest_run": 0.0, "longest_run_pitch": -1.0,
            "longest_run_share": 0.0, "longest_run_dominance": 0.0, "repeat_share": 0.0, "pitch_class_entropy": 0.0,
            "longest_silence": duration, "silent_share": 1.0, "polyphony": 0.0, "outside_piano": 0.0,
        }
    strikes, pitch, run_start, run_end = _longest_run(notes, run_gap)
    longest_silence, silent_total = _silences(notes, duration)
    return {
        "notes": float(len(notes)),
        "notes_per_second": float(len(notes) / duration),
        "longest_run": float(strikes),
        "longest_run_pitch": float(pitch),
        "longest_run_share": min(1.0, (run_end - run_start) / duration) if strikes > 1 else 0.0,
        "longest_run_dominance": strikes / sum(run_start <= n.start <= run_end for n in notes) if strikes > 1 else 0.0,
        "repeat_share": _repeat_share(notes, repeat_window),
        "pitch_class_entropy": _pitch_class_entropy(notes),
        "longest_silence": longest_silence,
        "silent_share": min(1.0, silent_total / duration),
        "polyphony": float(polyphony(notes)),
        "outside_piano": float(sum(not PIANO_LOW <= n.pitch <= PIANO_HIGH for n in notes)),
    }
