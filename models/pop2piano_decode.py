"""Pop2Piano's token ids to notes, read exactly as transformers' Pop2PianoTokenizer.batch_decode reads
them, in one compiled pass over every row of a song.

The tokenizer reads a row token by token in Python (a string split per token) and builds a
pretty_midi Note for every note: 3.6-6.1 s for the 4368 rows of a 4-minute song's 42 covers on the
H200 machine's CPU, as long as the GPU's whole generate. Here the vocabulary becomes two integer
tables once, and numba runs the tokenizer's own state machine over them (time steps clipped at the
row's cutoff, a note struck again closes the one sounding, notes left open close at the row's end),
then the note indices become seconds with the tokenizer's arithmetic: bit-identical notes
(tests/models/test_pop2piano_decode.py compares them with the tokenizer's on random tokens).

Shapes: `ids` (rows, width) int, one row per two-bar segment of one cover, in segment order.
`decode_rows` is the whole reading of one cover, from the generator's rows of token ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from covermill.models.notes import Note, sort_notes

SPECIAL, TIME, VELOCITY, NOTE, UNKNOWN = 0, 1, 2, 3, 4
KINDS = {"TOKEN_SPECIAL": SPECIAL, "TOKEN_TIME": TIME, "TOKEN_VELOCITY": VELOCITY, "TOKEN_NOTE": NOTE}
END_OF_ROW = 1  # the value of the special token that ends a row (EOS)


@dataclass(frozen=True)
class TokenTable:
    """The tokenizer's vocabulary as arrays: each id's kind (SPECIAL, TIME, ...) and value."""

    kinds: np.ndarray  # (vocab,) int64
    values: np.ndarray  # (vocab,) int64
    unknown: int  # the value of an id the vocabulary lacks (read as a time step, as the tokenizer does)
    pitches: int  # how many note slots the tokenizer keeps (its NOTE tokens + 1)
    velocity: int  # every note's velocity (the tokenizer's default_velocity)
    steps_per_row: int  # beat steps one row advances (num_bars x 4)
    cutoff: int  # beat steps after a row's start at which its time stops ((num_bars + 1) x 4)


def token_table(tokenizer: Any) -> TokenTable:
    """The tables of a Pop2PianoTokenizer (its `decoder`: id -> "value_TOKEN_KIND")."""
    size = max(tokenizer.decoder) + 1
    unknown = int(tokenizer.unk_token)
    kinds = np.full(size, TIME, dtype=np.int64)
    values = np.full(size, unknown, dtype=np.int64)
    for token_id, text in tokenizer.decoder.items():
        value, *kind = text.split("_")
        kinds[token_id] = KINDS.get("_".join(kind), UNKNOWN)
        values[token_id] = int(value)
    bars = int(tokenizer.num_bars)
    return TokenTable(kinds=kinds, values=values, unknown=unknown,
                      pitches=sum(k.endswith("NOTE") for k in tokenizer.encoder) + 1,
                      velocity=int(tokenizer.default_velocity), steps_per_row=bars * 4, cutoff=(bars + 1) * 4)


@njit(cache=True)
def _read_rows(ids, kinds, values, unknown, pitches, steps_per_row, cutoff_steps):  # pragma: no cover (compiled)
    """(notes (n, 3) int64: onset step, offset step, pitch; error code, 0 when none) of every row."""
    rows, width = ids.shape
    notes = np.empty((rows * (width + pitches), 3), dtype=np.int64)
    onsets = np.zeros(pitches, dtype=np.int64)
    sounding = np.zeros(pitches, dtype=np.bool_)
    n = 0
    for row in range(rows):
        current = row * steps_per_row
        cutoff = cutoff_steps + current
        velocity = 0
        sounding[:] = False
        for column in range(width):
            token = ids[row, column]
            if 0 <= token < kinds.shape[0]:
                kind, value = kinds[token], values[token]
            else:
                kind, value = TIME, unknown
            if kind == SPECIAL:
                if value == END_OF_ROW:
                    break
            elif kind == TIME:
                current = min(current + value, cutoff)
            elif kind == VELOCITY:
                velocity = value
            elif kind == NOTE:
                if value < 0 or value >= pitches:
                    return notes[:0], 2  # the tokenizer's list index fails here
                if sounding[value]:
                    if onsets[value] < current:  # struck again after a time step: the sounding one ends
                        notes[n, 0], notes[n, 1], notes[n, 2] = onsets[value], current, value
                        n += 1
                        if velocity == 0:
                            sounding[value] = False
                        else:
                            onsets[value] = current
                else:
                    sounding[value] = True
                    onsets[value] = current
            else:
                return notes[:0], 1  # a kind the tokenizer does not understand
        for pitch in range(pitches):  # the notes left open end with the row
            if sounding[pitch]:
                notes[n, 0], notes[n, 1], notes[n, 2] = onsets[pitch], max(current, max(cutoff, onsets[pitch] + 1)), pitch
                n += 1
    return notes[:n], 0


def read_rows(ids: np.ndarray, table: TokenTable) -> np.ndarray:
    """(n, 3) int64 notes (onset, offset, pitch) in beat steps of every row of `ids` (rows, width), row i
    starting at step i x steps_per_row, in no particular order."""
    notes, error = _read_rows(np.ascontiguousarray(ids, dtype=np.int64), table.kinds, table.values, table.unknown,
                              table.pitches, table.steps_per_row, table.cutoff)
    if error == 1:
        raise ValueError("Token type not understood!")
    if error == 2:
        raise IndexError("a note token beyond the tokenizer's notes")
    return notes


def notes_in_seconds(notes: np.ndarray, extrapolated_beatstep: np.ndarray, beatsteps: np.ndarray,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(starts, ends, pitches) (m,) of `notes` (n, 3) on the song's clock, with the tokenizer's
    arithmetic: a step's time less the first extrapolated beat's, dropped unless it ends after it starts
    (pretty_midi's remove_invalid_notes), then shifted by the first tracked beat."""
    offset = extrapolated_beatstep[0]
    starts = extrapolated_beatstep[notes[:, 0]] - offset
    ends = extrapolated_beatstep[notes[:, 1]] - offset
    valid = ends > starts
    first = beatsteps[0]
    return starts[valid] + first, ends[valid] + first, notes[valid, 2]


def decode_rows(row_tokens: list[Any], eos: int, features: Any, processor: Any, table: TokenTable) -> list[Note]:
    """One cover's rows of token ids (one per segment, in order; (tokens,) tensors) -> its notes on the
    song's clock, in onset order. `features` is the processor's output for the song: several songs in
    one batch (attention masks) are left to the tokenizer's own batch_decode."""
    width = max(len(t) for t in row_tokens) + 1
    # Padded with pad (0) and closed with EOS: the tokenizer cuts every row at its first EOS and
    # needs at least one (a row that never ended is then read to its end).
    ids = np.zeros((len(row_tokens), width), dtype=np.int64)
    for i, tokens in enumerate(row_tokens):
        ids[i, : len(tokens)] = tokens.numpy()
    ids[:, -1] = eos
    if "attention_mask" in features:
        decoded = processor.batch_decode(token_ids=ids, feature_extractor_output=features, return_midi=False)
        found = [(float(n.start), float(n.end), int(n.pitch), int(n.velocity)) for n in decoded["notes"]]
    else:
        starts, ends, pitches = notes_in_seconds(read_rows(ids, table), np.asarray(features["extrapolated_beatstep"][0]),
                                                 np.asarray(features["beatsteps"][0]))
        found = [(a, b, p, table.velocity) for a, b, p in zip(starts.tolist(), ends.tolist(), pitches.tolist())]
    return sort_notes([Note(start, end, pitch, velocity) for start, end, pitch, velocity in found if end > start and 0 < velocity])
