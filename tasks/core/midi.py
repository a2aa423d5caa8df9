"""Notes and pieces to and from MIDI files (the artifact users edit in MuseScore).

A raw transcription is one track at 120 BPM (`write_midi`). An arranged piece (`write_piece`)
is a file a pianist can open: its tempo map follows the song's tracked beats, so every beat of the
music is a beat of the score and bar lines fall on the downbeats (a pickup becomes a short first
bar); the time signature is the grid's; the hands are two tracks named Right and Left; the
sustain pedal is controller 64. Both hands play on channel 0, so one pedal sustains both.
The writer uses mido (pretty_midi cannot write a tempo map); the reader uses pretty_midi, which
turns any tempo map back into seconds.
"""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pretty_midi

from covermill.models.notes import Note, sort_notes
from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.core.music import LEFT, RIGHT, BeatGrid, Piece

# 960 ticks per beat: at 120 BPM about half a millisecond per tick, so a note list survives a
# write/read round trip to well within any audible difference.
RESOLUTION = 960
TRACK_NAMES = {RIGHT: "Right", LEFT: "Left", "": "Piano"}
PEDAL = 64  # the sustain pedal's controller number
MIN_FIRST_BEAT = 0.5  # a lead-in beat shorter than half the grid's first beat joins the next one


def write_midi(notes: list[Note], path: Path, program: int = 0) -> Path:
    """One-track MIDI of `notes` at 120 BPM, played by GM `program` (0 = acoustic grand piano), atomically."""
    return write_piece(Piece(notes=notes), path, program)


def _knots(grid: BeatGrid | None) -> tuple[np.ndarray, int]:
    """(times of score beats 0, 1, 2, ... with score beat 0 at 0 s, the index of the first downbeat
    among them). The grid's beats are extended backwards at the first beat's length to reach 0 s."""
    if grid is None:
        return np.array([0.0, 0.5]), 0  # 120 BPM from the start, bars of four from the start
    beats = grid.times
    period = beats[1] - beats[0]
    lead = []
    t = beats[0]
    while t > 0:
        t -= period
        lead.append(t)
    lead = lead[::-1]  # virtual beats, the earliest at or below 0 s
    if lead:
        lead[0] = 0.0
        if len(lead) > 1 and lead[1] < MIN_FIRST_BEAT * period:
            lead = [0.0] + lead[2:]  # the first beat lasts up to 1.5 beats rather than a sliver
    knots = np.concatenate([lead, beats]) if lead else beats
    return knots, grid.first_downbeat + len(lead)


def _ticks(times: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Seconds to ticks through the tempo map the knots make (the last beat length continues after them)."""
    index = np.arange(len(knots), dtype=float)
    inside = np.interp(times, knots, index)
    after = len(knots) - 1 + (times - knots[-1]) / (knots[-1] - knots[-2])
    return np.round(RESOLUTION * np.where(times > knots[-1], after, inside)).astype(np.int64)


def _conductor(knots: np.ndarray, first_downbeat: int, beats_per_bar: int, title: str) -> mido.MidiTrack:
    """Tempo at every beat, the time signature (after a pickup bar when the first downbeat is late)."""
    events: list[tuple[int, int, mido.MetaMessage]] = []
    if title:
        events.append((0, 0, mido.MetaMessage("track_name", name=title)))
    pickup = first_downbeat % beats_per_bar
    if pickup:
        events.append((0, 1, mido.MetaMessage("time_signature", numerator=pickup, denominator=4)))
    events.append((pickup * RESOLUTION, 1, mido.MetaMessage("time_signature", numerator=beats_per_bar, denominator=4)))
    lengths = np.diff(knots)
    for beat, seconds in enumerate(lengths):
        events.append((beat * RESOLUTION, 2, mido.MetaMessage("set_tempo", tempo=int(round(seconds * 1e6)))))
    return _track(events)


def _track(events: list[tuple[int, int, mido.Message | mido.MetaMessage]]) -> mido.MidiTrack:
    """A track from (absolute tick, order at that tick, message); delta times computed here."""
    track = mido.MidiTrack()
    now = 0
    for tick, _, message in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(message.copy(time=int(tick - now)))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def _hand_track(name: str, notes: list[Note], knots: np.ndarray, program: int,
                pedal: tuple[tuple[float, float], ...]) -> mido.MidiTrack:
    events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = [
        (0, 0, mido.MetaMessage("track_name", name=name)),
        (0, 1, mido.Message("program_change", channel=0, program=program)),
    ]
    if notes:
        starts = _ticks(np.array([n.start for n in notes]), knots)
        ends = np.maximum(_ticks(np.array([n.end for n in notes]), knots), starts + 1)
        for note, start, end in zip(notes, starts.tolist(), ends.tolist()):
            # at one tick, note-offs go first: a key struck again as it is released keeps its new note
            events.append((end, 2, mido.Message("note_off", channel=0, note=note.pitch, velocity=0)))
            events.append((start, 4, mido.Message("note_on", channel=0, note=note.pitch, velocity=min(127, max(1, note.velocity)))))
    if pedal:
        downs = _ticks(np.array([d for d, _ in pedal]), knots)
        ups = _ticks(np.array([u for _, u in pedal]), knots)
        for down, up in zip(downs.tolist(), ups.tolist()):
            events.append((up, 1, mido.Message("control_change", channel=0, control=PEDAL, value=0)))
            events.append((down, 3, mido.Message("control_change", channel=0, control=PEDAL, value=127)))
    return _track(events)


def write_piece(piece: Piece, path: Path, program: int = 0) -> Path:
    """A type-1 MIDI file of `piece` (module docstring), atomically."""
    for note in piece.notes:
        if note.end <= note.start:
            raise ValueError(f"note {note} ends before it starts")
        if not 0 <= note.pitch <= 127:
            raise ValueError(f"note {note} has a pitch outside MIDI's 0..127")
    knots, first_downbeat = _knots(piece.grid)
    beats_per_bar = piece.grid.beats_per_bar if piece.grid else 4
    midi = mido.MidiFile(type=1, ticks_per_beat=RESOLUTION)
    midi.tracks.append(_conductor(knots, first_downbeat, beats_per_bar, str(piece.meta.get("title", ""))))
    by_hand = piece.hands()
    if by_hand[RIGHT] or by_hand[LEFT]:
        # unassigned notes (there should be none once hands are assigned) join the hand nearer their pitch
        for note in by_hand[""]:
            by_hand[RIGHT if note.pitch >= 60 else LEFT].append(note)
        parts = [(TRACK_NAMES[RIGHT], by_hand[RIGHT]), (TRACK_NAMES[LEFT], by_hand[LEFT])]
    else:
        parts = [(TRACK_NAMES[""], by_hand[""])]
    for number, (name, notes) in enumerate(parts):
        pedal = piece.pedal if number == len(parts) - 1 else ()  # drawn under the lowest staff
        midi.tracks.append(_hand_track(name, sort_notes(notes), knots, program, pedal))
    with atomic_output(Path(path)) as tmp:
        midi.save(str(tmp))
    return Path(path)


def read_midi(path: Path) -> list[Note]:
    """Every pitched note of a MIDI file (all non-drum tracks merged), in onset order; a track
    named Right or Left gives its notes that hand."""
    return read_piece(path).notes


def read_piece(path: Path) -> Piece:
    """The notes, hands, sustain pedal and beat grid of a MIDI file (the grid as its tempo map and
    time signature say; None when the file has no more than one tempo)."""
    midi = pretty_midi.PrettyMIDI(str(path))
    hand_of = {name: hand for hand, name in TRACK_NAMES.items()}
    notes = [
        Note(float(n.start), float(n.end), int(n.pitch), int(n.velocity), hand_of.get(instrument.name.strip(), ""))
        for instrument in midi.instruments if not instrument.is_drum
        for n in instrument.notes
        if n.end > n.start
    ]
    return Piece(notes=sort_notes(notes), pedal=_pedal(midi), grid=_grid(midi))


def _pedal(midi: pretty_midi.PrettyMIDI) -> tuple[tuple[float, float], ...]:
    changes = sorted((c.time, c.value >= 64) for i in midi.instruments for c in i.control_changes if c.number == PEDAL)
    intervals, down = [], None
    for time, pressed in changes:
        if pressed and down is None:
            down = time
        elif not pressed and down is not None:
            intervals.append((float(down), float(time)))
            down = None
    if down is not None:
        intervals.append((float(down), float(midi.get_end_time())))
    return tuple(intervals)


def _grid(midi: pretty_midi.PrettyMIDI) -> BeatGrid | None:
    _, tempi = midi.get_tempo_changes()
    if len(tempi) <= 1:
        return None
    beats = midi.get_beats()
    signatures = midi.time_signature_changes
    meter = signatures[-1] if signatures else None
    beats_per_bar = meter.numerator if meter else 4
    first_downbeat = int(np.argmin(np.abs(beats - meter.time))) % beats_per_bar if meter else 0
    return BeatGrid(beats=tuple(beats), beats_per_bar=beats_per_bar, first_downbeat=first_downbeat, source="midi")
