"""hands: every note to the right or the left hand, so that two hands can play the piece.

Chord by chord (notes struck together), the notes are split by pitch, low to the left hand and
high to the right, at the split that costs least:
- each hand strikes at most `keys` notes within `span` semitones; a hand given more keeps what
  matters (the right hand its top note, the melody; the left its bass) and the loudest others
  within reach, a note beyond reach moving by octaves into it (`fold`: its pitch class, so the
  harmony, stays; each costs `fold_cost`), and every note it cannot keep costs `drop_cost`;
- a hand that jumps costs `jump_cost` per octave its centre moves from its last chord;
- a note the melody step gave the right hand stays there, one the accompaniment gave the left
  hand stays there, and the left hand never plays above the right.
A hand that strikes again releases any of its notes still held that would break the same limits
(the pedal, not the fingers, keeps them ringing). So every chord, and every instant, is playable
by two hands of five fingers reaching `span` semitones.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import Field

from covermill.models.notes import CHORD_WINDOW, Note, onset_groups
from covermill.tasks.arrange.registry import StepContext, register
from covermill.tasks.core.music import LEFT, RIGHT, Piece
from covermill.tasks.core.settings import Settings


class HandsParams(Settings):
    keys: int = Field(5, ge=1, le=5)  # notes one hand strikes at once
    span: int = Field(14, ge=7, le=16)  # semitones one hand reaches (a ninth and more; a tenth is 15-16)
    split: int = Field(60, ge=21, le=108)  # where the hands meet before any chord says otherwise (middle C)
    drop_cost: float = Field(4.0, ge=0.0)  # per note no hand can play
    fold: bool = True  # a note beyond a hand's reach moves by octaves into it (its pitch class, the harmony, stays)
    # per note moved so: dearer than a two-octave jump, since a jump changes no sound and a fold
    # does (0.5 folded 5-20 % of a transcription's notes; 2.0 raised the two-hands style's median
    # aligned share on the tuning songs from 0.607 to 0.621)
    fold_cost: float = Field(2.0, ge=0.0)
    jump_cost: float = Field(1.0, ge=0.0)  # per octave a hand's centre moves
    chord_window: float = Field(CHORD_WINDOW, ge=0.0)


def reachable(pitches: list[int], keys: int, span: int, anchor_top: bool, loudness: dict[int, int],
              fold: bool = True) -> dict[int, int]:
    """What one hand plays of `pitches` (sorted): {pitch struck in the music: key played}. The anchor
    (top for the right hand, bottom for the left) stays; the others within `span` of it stay, and
    with `fold` the ones beyond it move by octaves into reach (unless that key is taken); of those,
    the loudest, `keys` in all."""
    if not pitches:
        return {}
    anchor = pitches[-1] if anchor_top else pitches[0]
    low, high = (anchor - span, anchor) if anchor_top else (anchor, anchor + span)
    placed: dict[int, int] = {}
    for pitch in pitches:
        if pitch == anchor:
            continue
        key = pitch
        if fold and not low <= key <= high:
            key = pitch + 12 * ((low - pitch) // 12 + (1 if (low - pitch) % 12 else 0)) if pitch < low else \
                pitch - 12 * ((pitch - high) // 12 + (1 if (pitch - high) % 12 else 0))
        if low <= key <= high and key != anchor:
            placed[pitch] = key
    # the loudest first; unmoved before moved; then nearest the anchor
    order = sorted(placed, key=lambda q: (-loudness[q], placed[q] != q, abs(placed[q] - anchor)))
    kept = {anchor: anchor}
    for pitch in order:
        if len(kept) == keys:
            break
        if placed[pitch] not in kept.values():
            kept[pitch] = placed[pitch]
    return kept


def _centre(pitches: list[int]) -> float:
    return float(np.mean(pitches))


def split_chord(pitches: list[int], right_only: set[int], left_centre: float, right_centre: float,
                loudness: dict[int, int], p: HandsParams, left_only: frozenset[int] = frozenset()
                ) -> tuple[dict[int, int], dict[int, int]]:
    """(left, right): what each hand plays of one chord (sorted pitches; {struck: key}, see reachable),
    at the cheapest split (module docstring); `right_only` and `left_only` are notes an earlier step
    gave a hand (the melody, the accompaniment)."""
    best: tuple[float, int, dict[int, int], dict[int, int]] | None = None
    for k in range(len(pitches) + 1):
        low, high = pitches[:k], pitches[k:]
        if any(q in right_only for q in low) or any(q in left_only and q not in right_only for q in high):
            continue  # a melody note in the left hand, or the accompaniment in the right: never
        left = reachable(low, p.keys, p.span, anchor_top=False, loudness=loudness, fold=p.fold)
        right = reachable(high, p.keys, p.span, anchor_top=True, loudness=loudness, fold=p.fold)
        dropped = len(pitches) - len(left) - len(right)
        moved = sum(1 for hand in (left, right) for struck, key in hand.items() if struck != key)
        cost = dropped * p.drop_cost + moved * p.fold_cost
        if left:
            cost += p.jump_cost * abs(_centre(list(left.values())) - left_centre) / 12
        if right:
            cost += p.jump_cost * abs(_centre(list(right.values())) - right_centre) / 12
        tie = abs(k - sum(q < p.split for q in pitches))  # ties go to the split nearest the meeting point
        if best is None or (cost, tie) < (best[0], best[1]):
            best = (cost, tie, left, right)
    if best is None:  # the marks contradict each other (a left note above a right one): pitch decides
        return split_chord(pitches, set(), left_centre, right_centre, loudness, p)
    return best[2], best[3]


def _fits(pitches: list[int], p: HandsParams) -> bool:
    return len(pitches) <= p.keys and (not pitches or max(pitches) - min(pitches) <= p.span)


@register("hands", HandsParams, on_piece=True)
def hands(piece: Piece, p: HandsParams, context: StepContext) -> Piece:
    left_centre, right_centre = float(p.split - 7), float(p.split + 7)
    played: list[list] = []  # [start, end, pitch, velocity, hand], ends shortened in place
    sounding: dict[str, list[list]] = {LEFT: [], RIGHT: []}
    for group in onset_groups(piece.notes, p.chord_window):
        t = group[0].start
        loudness: dict[int, int] = {}
        for note in group:
            loudness[note.pitch] = max(loudness.get(note.pitch, 0), note.velocity)
        pitches = sorted(loudness)
        right_only = {n.pitch for n in group if n.hand == RIGHT}
        left_only = frozenset(n.pitch for n in group if n.hand == LEFT)
        left, right = split_chord(pitches, right_only, left_centre, right_centre, loudness, p, left_only)
        for hand, kept in ((LEFT, left), (RIGHT, right)):
            if not kept:
                continue
            held = [v for v in sounding[hand] if v[1] > t]
            if not _fits(list(kept.values()) + [v[2] for v in held], p):
                for voice in held:  # the hand moves on; the pedal, not the fingers, keeps these ringing
                    voice[1] = t
                held = []
            struck = [[n.start, n.end, kept[n.pitch], n.velocity, hand] for n in group if n.pitch in kept]
            seen: set[int] = set()
            struck = [v for v in struck if not (v[2] in seen or seen.add(v[2]))]  # one key, one note
            sounding[hand] = held + struck
            played.extend(struck)
        if left:
            left_centre = _centre(list(left.values()))
        if right:
            right_centre = _centre(list(right.values()))
    return replace(piece, notes=[Note(*voice) for voice in played if voice[1] > voice[0]])
