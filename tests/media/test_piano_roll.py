"""The review page's piano-roll pictures: known notes land on the expected rows and columns in their
hands' colours, bar lines where the MIDI's bars start, drawn again only when the MIDI changes."""

from __future__ import annotations

import os

import numpy as np
from wand.image import Image

from covermill.models.notes import Note
from covermill.tasks.core.midi import write_piece
from covermill.tasks.core.music import LEFT, RIGHT, BeatGrid, Piece
from covermill.tasks.media.falling_notes.colours import Palette
from covermill.tasks.media.falling_notes.timeline import NoteTimeline
from covermill.tasks.media.piano_roll import BACKGROUND, BAR_LINE, fresh_piano_roll, piano_roll


def test_notes_and_bars_land_where_hand_computed():
    # 4 s across 40 columns (0.1 s a column); 60 BPM, 2 beats a bar: downbeats every 2 s
    grid = BeatGrid(beats=tuple(float(b) for b in range(6)), beats_per_bar=2)
    piece = Piece([Note(0.5, 1.0, 108, 90, RIGHT), Note(2.0, 4.0, 21, 90, LEFT)], grid=grid)
    roll = piano_roll(NoteTimeline.from_piece(piece), width=40)
    palette = Palette()
    assert roll.shape == (88, 40, 3)
    assert (roll[0, 5:10] == palette.right_hand).all()  # C8, the top row, 0.5..1.0 s
    assert (roll[0, 10] != palette.right_hand).any()
    assert (roll[87, 20:40] == palette.left_hand).all()  # A0, the bottom row, 2..4 s
    assert (roll[40, 0] == BAR_LINE).all() and (roll[40, 20] == BAR_LINE).all()  # bars at 0 s and 2 s
    assert (roll[40, 1] == BACKGROUND).all()


def test_the_picture_is_drawn_again_only_when_the_midi_changes(tmp_path):
    midi = write_piece(Piece([Note(0, 1, 60, 90, RIGHT)]), tmp_path / "c.mid")
    target = tmp_path / "c.png"
    assert fresh_piano_roll(midi, target) == target
    with Image(filename=str(target)) as image:
        assert (image.width, image.height) == (360, 88)
    made = target.stat().st_mtime_ns
    assert fresh_piano_roll(midi, target) == target and target.stat().st_mtime_ns == made  # up to date: kept
    write_piece(Piece([Note(0, 1, 72, 90, LEFT)]), midi)
    os.utime(midi, ns=(made + 10**9, made + 10**9))
    fresh_piano_roll(midi, target)
    with Image(filename=str(target)) as image:
        pixels = np.array(image)[..., :3]
    assert (pixels[108 - 72, 0] == Palette().left_hand).all()  # the new note, in the new hand


def test_a_missing_or_broken_midi_gets_no_picture(tmp_path):
    assert fresh_piano_roll(tmp_path / "none.mid", tmp_path / "none.png") is None
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd not really")
    assert fresh_piano_roll(broken, tmp_path / "broken.png") is None
    assert not (tmp_path / "broken.png").exists()
