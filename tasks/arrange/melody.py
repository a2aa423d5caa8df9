"""melody: the tune as one continuous line on top, heard above everything else.

Chord by chord among the notes at or above `split`, one note is the melody: where the song has a
lead voice (its predominant melody, tracked from the audio with essentia's Melodia in the song's
analysis) the note that sings its pitch class, nearest its register; elsewhere, or when no note
does, the top note. The melody then is the top voice: notes of the chord above it move down an
octave (or go, when that note is already there), and notes still ringing above it end as it starts.
It is louder (`accent`) than the rest (scaled by `others`), legato (each note lasts until the next
one, at most `hold` seconds) and never overlaps itself; `octave_below` doubles it an octave lower,
as melody-in-octaves playing does. Melody notes belong to the right hand.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import Field

from covermill.models.notes import CHORD_WINDOW, Note, onset_groups, sort_notes
from covermill.tasks.arrange.registry import StepContext, register
from covermill.tasks.arrange.steps import resolve_same_pitch
from covermill.tasks.core.music import RIGHT, Piece
from covermill.tasks.core.settings import Settings


class MelodyParams(Settings):
    # The melody is chosen among the notes at or above middle C. Lower, a band's accompaniment figures
    # (G3 ostinatos) were taken for the tune; brought forward, they outweighed the song's harmony.
    split: int = Field(60, ge=21, le=108)
    # A gentle accent: +16 and 0.8 moved a tuning song's median aligned share from 0.63 to 0.46 (an
    # emphasised line shifts the whole chroma, even the best transposition Qmax compares at);
    # +8 and 0.9 kept it at 0.60 while the tune still stands out.
    accent: int = Field(8, ge=0, le=64)  # velocity added to melody notes
    others: float = Field(0.9, gt=0.0, le=1.0)  # every other note's velocity is scaled by this
    legato: bool = True  # a melody note lasts until the next one starts...
    hold: float = Field(1.5, gt=0.0)  # ...but no longer than this (s) from its onset
    follow_audio: bool = True  # choose the note the song's lead voice sings, where it sings
    octave_below: bool = False  # double the melody an octave lower (melody in octaves, right hand)
    chord_window: float = Field(CHORD_WINDOW, ge=0.0)


def sung_pitches(analysis: Any, times: np.ndarray) -> np.ndarray | None:
    """The lead voice's MIDI pitch at each time (n,), NaN where nobody sings; None without an analysis
    that tracked one (its `melody_at(times)`, tasks/arrange/analysis.py)."""
    melody_at = getattr(analysis, "melody_at", None)
    if melody_at is None:
        return None
    sung = np.asarray(melody_at(times), dtype=float)
    return sung if sung.shape == times.shape else None


def choose(group: list[Note], sung: float) -> Note:
    """The melody note of a chord: the one on the sung pitch class, nearest its register, within a
    semitone of it; else the top note."""
    top = max(group, key=lambda n: (n.pitch, n.velocity))
    if np.isnan(sung):
        return top

    def fit(note: Note) -> tuple[float, float]:
        step = abs(note.pitch - sung) % 12
        return (min(step, 12 - step), abs(note.pitch - sung))

    best = min(group, key=fit)
    return best if fit(best)[0] <= 1.0 else top


@register("melody", MelodyParams, on_piece=True)
def melody(piece: Piece, p: MelodyParams, context: StepContext) -> Piece:
    upper = [n for n in piece.notes if n.pitch >= p.split]
    groups = onset_groups(upper, p.chord_window)
    if not groups:
        return piece
    times = np.array([g[0].start for g in groups])
    sung = sung_pitches(context.analysis, times) if p.follow_audio else None
    chosen = [choose(g, sung[i] if sung is not None else np.nan) for i, g in enumerate(groups)]
    line = []
    for i, note in enumerate(chosen):
        end = note.end
        following = chosen[i + 1].start if i + 1 < len(chosen) else None
        if p.legato and following is not None:
            end = max(end, min(following, note.start + p.hold))
        if following is not None:
            end = min(end, following)  # one line: never two melody notes at once
        line.append(note._replace(end=end, velocity=min(127, note.velocity + p.accent), hand=RIGHT))
    doubled = [n._replace(pitch=n.pitch - 12, velocity=max(1, n.velocity - 10)) for n in line if n.pitch - 12 >= 21] \
        if p.octave_below else []
    lead_of = {id(n): chosen[i] for i, g in enumerate(groups) for n in g}  # each upper note's chord's melody note
    starts = np.array([m.start for m in line])
    rest: list[Note] = []
    for note in piece.notes:
        lead = lead_of.get(id(note))
        if lead is note:
            continue
        note = note._replace(velocity=max(1, int(round(note.velocity * p.others))))
        if lead is not None and note.pitch > lead.pitch:  # struck above the melody: down an octave
            lower = note.pitch - 12 * ((note.pitch - lead.pitch) // 12 + 1)
            if lower == lead.pitch or lower < 21:
                continue
            note = note._replace(pitch=lower)
        note = _ended_under(note, line, starts)
        if note.end > note.start:
            rest.append(note)
    return replace(piece, notes=resolve_same_pitch(sort_notes(line + doubled + rest)))


def _ended_under(note: Note, line: list[Note], starts: np.ndarray) -> Note:
    """`note` ended when a later melody note starts below it while it still rings."""
    j = int(np.searchsorted(starts, note.start + 1e-9, side="right"))
    while j < len(line) and line[j].start < note.end:
        if note.pitch > line[j].pitch:
            return note._replace(end=line[j].start)
        j += 1
    return note
