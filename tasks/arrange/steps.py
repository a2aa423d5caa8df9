"""The note-level arrangement steps: each a pure `notes -> notes` function with a validated parameter model.

fold, thin, melody_bass, sustain, humanise, quantise and dynamics work on the notes alone; the
steps that need the song's beat grid, melody or chords (hands, melody, accompany, pedal, and
quantise when a grid is known) work on the whole piece in modules of their own. All of them
register in tasks/arrange/registry.py, so a style in config.yaml can name them. The note helpers
at the top are shared by several steps (and the tests).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from covermill.models.notes import CHORD_WINDOW, PIANO_HIGH, PIANO_LOW, Note, onset_groups, sort_notes
from covermill.tasks.arrange.beats import beat_times
from covermill.tasks.arrange.registry import register
from covermill.tasks.core.settings import Settings

# ---------------------------------------------------------------- shared helpers

def resolve_same_pitch(notes: list[Note], merge_window: float = 0.0) -> list[Note]:
    """A key cannot sound twice: same-pitch onsets within `merge_window` become one note, and an
    earlier note still sounding when the key is struck again ends at the re-strike."""
    by_pitch: dict[int, list[Note]] = {}
    for note in sort_notes(notes):
        by_pitch.setdefault(note.pitch, []).append(note)
    out: list[Note] = []
    for same in by_pitch.values():
        current = same[0]
        for note in same[1:]:
            if note.start - current.start < merge_window:
                current = current._replace(end=max(current.end, note.end), velocity=max(current.velocity, note.velocity))
                continue
            if note.start < current.end:
                current = current._replace(end=note.start)
            if current.end > current.start:
                out.append(current)
            current = note
        out.append(current)
    return sort_notes(out)


def tidy(notes: list[Note]) -> list[Note]:
    """Notes in the form every step may rely on: sorted, positive lengths, plain numbers, velocity 1..127."""
    return sort_notes([
        Note(float(n.start), float(n.end), int(n.pitch), min(127, max(1, int(n.velocity))), str(n.hand))
        for n in notes if n.end > n.start
    ])


# ---------------------------------------------------------------- the steps

class FoldParams(Settings):
    low: int = Field(PIANO_LOW, ge=0, le=127)
    high: int = Field(PIANO_HIGH, ge=0, le=127)
    merge_window: float = Field(0.05, ge=0.0)  # same-pitch onsets this close become one note

    @model_validator(mode="after")
    def _an_octave_at_least(self) -> FoldParams:
        if self.high - self.low < 11:
            raise ValueError(f"fold needs at least an octave between low ({self.low}) and high ({self.high})")
        return self


@register("fold", FoldParams)
def fold(notes: list[Note], p: FoldParams) -> list[Note]:
    """Move every note by octaves into low..high, then merge the unisons that creates."""
    moved = []
    for note in notes:
        pitch = note.pitch
        while pitch < p.low:
            pitch += 12
        while pitch > p.high:
            pitch -= 12
        moved.append(note._replace(pitch=pitch))
    return resolve_same_pitch(moved, p.merge_window)


class ThinParams(Settings):
    max_voices: int = Field(6, ge=2)
    min_velocity: int = Field(0, ge=0, le=127)
    min_duration: float = Field(0.0, ge=0.0)
    chord_window: float = Field(CHORD_WINDOW, ge=0.0)


@register("thin", ThinParams)
def thin(notes: list[Note], p: ThinParams) -> list[Note]:
    """At most `max_voices` notes at once: the top line and the bass stay, then the loudest inner
    voices (a newly struck note before a held one). A held note that loses its voice ends where
    the new chord starts. Notes weaker than `min_velocity` or shorter than `min_duration` go first."""
    heard = [n for n in notes if n.velocity >= p.min_velocity and n.duration >= p.min_duration]
    kept: list[list] = []  # [start, end, pitch, velocity, hand], ends shortened in place
    sounding: list[list] = []
    for group in onset_groups(heard, p.chord_window):
        t = group[0].start
        struck = {n.pitch for n in group}
        for held in sounding:
            if held[2] in struck and held[1] > t:  # the key is struck again
                held[1] = t
        sounding = [h for h in sounding if h[1] > t]
        fresh = [[n.start, n.end, n.pitch, n.velocity, n.hand] for n in group]
        contenders = [(h, False) for h in sounding] + [(f, True) for f in fresh]
        if len(contenders) > p.max_voices:
            by_pitch = sorted(contenders, key=lambda c: (c[0][2], c[1], c[0][3]))
            outer = [by_pitch[0], by_pitch[-1]]
            inner = sorted(by_pitch[1:-1], key=lambda c: (not c[1], -c[0][3], -c[0][2]))
            chosen = outer + inner[: p.max_voices - 2]
            chosen_ids = {id(c[0]) for c in chosen}
            for voice, is_fresh in contenders:
                if id(voice) not in chosen_ids and not is_fresh:
                    voice[1] = t
            contenders = chosen
        sounding = [voice for voice, _ in contenders if voice[1] > t]
        kept.extend(voice for voice, is_fresh in contenders if is_fresh)
    return resolve_same_pitch(tidy([Note(*voice) for voice in kept]))


class PaceParams(Settings):
    # notes struck per second, at most, window by window. On the tuning songs' minutes, two-hands
    # paced at 32 kept its median aligned share (0.623 -> 0.635) and gave the densest song a
    # playable pick (50 -> 31 notes a second); 24 cost 0.04, 16 cost 0.10
    max_rate: float = Field(32.0, gt=0.0)
    window: float = Field(1.0, gt=0.0)  # seconds; the song is cut into windows this long
    chord_window: float = Field(CHORD_WINDOW, ge=0.0)


@register("pace", PaceParams)
def pace(notes: list[Note], p: PaceParams) -> list[Note]:
    """At most `max_rate` notes struck a second, window by window: where a transcription fires on
    every frame of a noisy mix (150 notes a second in one electronic track, 50 still after
    quantising, more than the ranking lets a cover play), each chord keeps its top and bottom
    notes and the loudest of the rest fill what the window allows."""
    budget = max(1, int(p.max_rate * p.window))
    windows: dict[int, list[tuple[bool, Note]]] = {}
    for group in onset_groups(notes, p.chord_window):
        ordered = sorted(group, key=lambda n: n.pitch)
        for i, note in enumerate(ordered):
            windows.setdefault(int(note.start // p.window), []).append((i in (0, len(ordered) - 1), note))
    kept: list[Note] = []
    for members in windows.values():
        if len(members) <= budget:
            kept.extend(n for _, n in members)
            continue
        ranked = sorted(members, key=lambda m: (not m[0], -m[1].velocity, -m[1].duration))
        kept.extend(n for _, n in ranked[:budget])
    return sort_notes(kept)


class MelodyBassParams(Settings):
    split: int = Field(55, ge=1, le=127)  # melody from notes at or above (G3), bass from below
    hold: float = Field(1.0, gt=0.0)  # a melody note held this long yields to a lower new one
    min_velocity: int = Field(0, ge=0, le=127)
    grid: float | None = Field(None, gt=0.0)  # seconds per left-hand cell; None = tracked beats
    beats_per_cell: int = Field(1, ge=1)
    chord_window: float = Field(CHORD_WINDOW, ge=0.0)


@register("melody_bass", MelodyBassParams)
def melody_bass(notes: list[Note], p: MelodyBassParams) -> list[Note]:
    """Right hand: the top line (skyline) of the notes at or above `split`; left hand: the lowest
    note below `split` struck in each beat-grid cell, held through its cell."""
    loud = [n for n in notes if n.velocity >= p.min_velocity]
    return sort_notes(_skyline([n for n in loud if n.pitch >= p.split], p) + _bass_line([n for n in loud if n.pitch < p.split], p))


def _skyline(notes: list[Note], p: MelodyBassParams) -> list[Note]:
    melody: list[Note] = []
    for group in onset_groups(notes, p.chord_window):
        top = max(group, key=lambda n: (n.pitch, n.velocity))
        if melody:
            last = melody[-1]
            still_on_top = last.end > top.start and last.pitch > top.pitch and top.start - last.start < p.hold
            if still_on_top:
                continue
            if last.end > top.start:
                melody[-1] = last._replace(end=top.start)
        melody.append(top)
    return [n for n in melody if n.end > n.start]


def _bass_line(notes: list[Note], p: MelodyBassParams) -> list[Note]:
    if not notes:
        return []
    notes = sort_notes(notes)
    beats = beat_times(notes, p.grid)[:: p.beats_per_cell]
    cells = np.searchsorted(beats, [n.start for n in notes], side="right")
    lowest: dict[int, Note] = {}
    for cell, note in zip(cells.tolist(), notes):
        best = lowest.get(cell)
        if best is None or (note.pitch, -note.velocity) < (best.pitch, -best.velocity):
            lowest[cell] = note
    bass = []
    for cell in sorted(lowest):
        note = lowest[cell]
        cell_end = float(beats[cell]) if cell < len(beats) else note.end
        bass.append(note._replace(end=max(note.end, cell_end)))
    for i in range(len(bass) - 1):  # legato: each bass note lasts until the next
        if bass[i].end > bass[i + 1].start:
            bass[i] = bass[i]._replace(end=bass[i + 1].start)
    return [n for n in bass if n.end > n.start]


class SustainParams(Settings):
    max_length: float = Field(2.0, gt=0.0)  # no note is held longer than this (s) by the pedal
    restrike_gap: float = Field(0.05, ge=0.0)  # a same-pitch onset this soon after an end continues the note
    min_chord_size: int = Field(2, ge=1)
    chord_window: float = Field(CHORD_WINDOW, ge=0.0)


@register("sustain", SustainParams)
def sustain(notes: list[Note], p: SustainParams) -> list[Note]:
    """Pedal-like smoothing: a re-strike right after a note ends continues it, and every note
    rings on until the next chord change (a chord of `min_chord_size`+ notes with other pitch
    classes), at most `max_length` seconds from its onset. Notes are never shortened."""
    joined = _join_restrikes(notes, p.restrike_gap)
    changes: list[float] = []
    harmony: frozenset[int] = frozenset()
    for group in onset_groups(joined, p.chord_window):
        classes = frozenset(n.pitch % 12 for n in group)
        if len(group) >= p.min_chord_size and classes != harmony:
            changes.append(group[0].start)
            harmony = classes
    change_times = np.array(changes)
    next_change = np.searchsorted(change_times, [n.start + p.chord_window for n in joined], side="right")
    held = []
    for note, i in zip(joined, next_change.tolist()):
        release = float(change_times[i]) if i < len(change_times) else note.start + p.max_length
        held.append(note._replace(end=max(note.end, min(release, note.start + p.max_length))))
    return resolve_same_pitch(held)


def _join_restrikes(notes: list[Note], gap: float) -> list[Note]:
    by_pitch: dict[int, list[Note]] = {}
    for note in sort_notes(notes):
        by_pitch.setdefault(note.pitch, []).append(note)
    out = []
    for same in by_pitch.values():
        current = same[0]
        for note in same[1:]:
            if note.start - current.end <= gap:
                current = current._replace(end=max(current.end, note.end), velocity=max(current.velocity, note.velocity))
            else:
                out.append(current)
                current = note
        out.append(current)
    return sort_notes(out)


class HumaniseParams(Settings):
    velocity_sd: float = Field(6.0, ge=0.0)  # MIDI velocity units
    timing_sd: float = Field(0.008, ge=0.0)  # seconds


@register("humanise", HumaniseParams, random=True)
def humanise(notes: list[Note], p: HumaniseParams, rng: np.random.Generator) -> list[Note]:
    """Random velocity jitter per note, and timing jitter as a gentle tempo wobble: each chord
    moves as one, and every note end moves with the time around it, so a note that ended as a
    chord began still ends as it begins (no voices collide: the polyphony stays as it was)."""
    if not notes:
        return []
    onsets = np.array([group[0].start for group in onset_groups(notes)])
    shifts = rng.normal(0.0, p.timing_sd, len(onsets)) if p.timing_sd else np.zeros(len(onsets))
    # Keeping each shift within 40% of the gaps to its neighbours keeps the warp increasing.
    gaps = np.diff(onsets)
    shifts = np.clip(shifts, -np.concatenate([[onsets[0]], 0.4 * gaps]), np.concatenate([0.4 * gaps, [np.inf]]))

    def warp(t: float) -> float:
        return t + float(np.interp(t, onsets, shifts))

    velocities = rng.normal(0.0, p.velocity_sd, len(notes)) if p.velocity_sd else np.zeros(len(notes))
    return [
        Note(warp(n.start), warp(n.end), n.pitch, min(127, max(1, int(round(n.velocity + dv)))), n.hand)
        for n, dv in zip(sort_notes(notes), velocities.tolist())
    ]


class DynamicsParams(Settings):
    target: int = Field(80, ge=1, le=127)  # the velocity every note is pulled towards
    strength: float = Field(0.5, ge=0.0, le=1.0)  # 0 keeps the velocities, 1 plays every note at `target`


@register("dynamics", DynamicsParams)
def dynamics(notes: list[Note], p: DynamicsParams) -> list[Note]:
    """Narrow the velocity range: a transcription's faint notes (inner voices, soft accompaniment)
    become audible beside its loudest, as a pianist balances the hands."""
    return [n._replace(velocity=int(round(n.velocity + p.strength * (p.target - n.velocity)))) for n in notes]
