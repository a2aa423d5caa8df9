"""Bars of note values (notation.py) as a MusicXML piano score, through music21.

One part of two staves joined by a brace (music21 writes PartStaffs in a StaffGroup as one
<part> with <staves>2</staves>, as MuseScore and LilyPond read a piano), the title, the artist
as composer and covermill as arranger in the header, the time signature, key signature and a
metronome mark in the first bar (and where the tempo moves), beams by the time signature, triplet
brackets. Black keys are spelt with sharps in sharp keys and C major, with flats in flat keys.
music21 is given finished bars (makeNotation=False), so it only serialises: it neither re-splits
nor re-spells what notation.py decided.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from music21 import chord, clef, duration, key, layout, meter, note, pitch, stream, tempo, tie
from music21 import metadata as m21metadata
from music21.musicxml.m21ToXml import GeneralObjectExporter

from covermill.tasks.core.atomic import atomic_output
from covermill.tasks.media.score.notation import ARRANGER, Event, Notation

SHARPS = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLATS = ("C", "D-", "D", "E-", "E", "F", "G-", "G", "A-", "A", "B-", "B")  # music21 writes a flat as "-"
CLEFS = {"treble": clef.TrebleClef, "bass": clef.BassClef}


def spelt(midi: int, fifths: int) -> pitch.Pitch:
    """The pitch of MIDI number `midi`, a black key spelt as the key signature leans (flats when `fifths` < 0)."""
    name = (FLATS if fifths < 0 else SHARPS)[midi % 12]
    return pitch.Pitch(f"{name}{midi // 12 - 1}")


def _element(event: Event, steps: int, fifths: int) -> note.GeneralNote:
    length = duration.Duration(Fraction(event.length, steps))
    if not event.pitches:
        rest = note.Rest(duration=length)
        # A hidden rest is written as <forward>, which carries no tuplet bracket: inside a triplet beat
        # the bracket music21 put on it would be lost and leave its group open (musicxml2ly then fails),
        # so a second voice's gap shorter than a beat stays a visible rest there.
        if event.hidden and (steps != 3 or event.length % steps == 0):
            rest.style.hideObjectOnPrint = True
        return rest
    pitches = [spelt(p, fifths) for p in event.pitches]
    element = note.Note(pitches[0], duration=length) if len(pitches) == 1 else chord.Chord(pitches, duration=length)
    if event.tie_start or event.tie_stop:
        element.tie = tie.Tie("continue" if event.tie_start and event.tie_stop else ("start" if event.tie_start else "stop"))
    return element


def _fill(container: stream.Stream, events: list[Event], steps: int, fifths: int) -> None:
    for event in events:
        container.insert(Fraction(event.offset, steps), _element(event, steps, fifths))


def _measure(notation: Notation, index: int, staff: int) -> stream.Measure:
    bar = notation.bars[index]
    measure = stream.Measure(number=index if notation.pickup else index + 1)
    for number in sorted(v for s, v in bar.voices if s == staff):
        # numbered across the staves (1, 2 on the upper, 5, 6 on the lower, as MuseScore writes them):
        # an importer that follows voices by number keeps each staff's voices apart
        voice = stream.Voice(id=str((staff - 1) * 4 + number))
        _fill(voice, bar.voices[(staff, number)], notation.steps, notation.fifths)
        measure.insert(0, voice)
    full = notation.beats_per_bar * notation.steps
    if index == 0 and bar.length < full:
        measure.paddingLeft = Fraction(full - bar.length, notation.steps)  # the pickup: an incomplete first bar
    return measure


def _brackets(measure: stream.Measure) -> None:
    for voice in measure.voices:
        if any(e.duration.tuplets for e in voice.notesAndRests):
            stream.makeNotation.makeTupletBrackets(voice, inPlace=True)


def score_stream(notation: Notation, title: str, composer: str) -> stream.Score:
    """The music21 score of `notation` (module docstring)."""
    score = stream.Score()
    score.metadata = m21metadata.Metadata()
    score.metadata.title = title
    if composer:
        score.metadata.composer = composer
    score.metadata.addContributor(m21metadata.Contributor(role="arranger", name=ARRANGER))
    signature_text = f"{notation.beats_per_bar}/4"
    staves = []
    marks = dict(notation.tempi)
    for staff in (1, 2):
        part = stream.PartStaff(id=f"P1-Staff{staff}")
        for index in range(len(notation.bars)):
            measure = _measure(notation, index, staff)
            if index == 0:
                measure.insert(0, CLEFS[notation.clefs[staff - 1]]())
                measure.insert(0, key.KeySignature(notation.fifths))
                measure.insert(0, meter.TimeSignature(signature_text))
            if staff == 1 and index in marks:
                measure.insert(0, tempo.MetronomeMark(number=marks[index], referent=duration.Duration(1.0)))
            _brackets(measure)
            part.append(measure)
        part.makeBeams(inPlace=True)
        staves.append(part)
        score.insert(0, part)
    score.insert(0, layout.StaffGroup(staves, name="Piano", abbreviation="Pno.", symbol="brace"))
    return score


def musicxml_bytes(notation: Notation, title: str, composer: str = "") -> bytes:
    """The score as MusicXML (UTF-8, partwise)."""
    exporter = GeneralObjectExporter(score_stream(notation, title, composer))
    exporter.makeNotation = False
    return exporter.parse()


def write_musicxml(notation: Notation, target: Path, title: str, composer: str = "") -> Path:
    """`target` (score.musicxml), atomically."""
    data = musicxml_bytes(notation, title, composer)
    with atomic_output(Path(target)) as tmp:
        Path(tmp).write_bytes(data)
    return Path(target)
