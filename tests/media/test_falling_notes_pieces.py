"""The falling-notes video's pieces on tiny hand-computed inputs: key geometry, the timeline's
lookups, the colour conversion and single frames drawn in memory."""

from __future__ import annotations

import numpy as np
import pytest

from covermill.models.notes import Note
from covermill.tasks.core.music import LEFT, RIGHT, BeatGrid, Piece
from covermill.tasks.media.falling_notes.colours import Palette, to_rgb, to_yuv
from covermill.tasks.media.falling_notes.encoder import split_frames
from covermill.tasks.media.falling_notes.keyboard import Keyboard, fold_onto_keys
from covermill.tasks.media.falling_notes.painter import Frame, FramePainter, Layout
from covermill.tasks.media.falling_notes.timeline import LEFT_HAND, RIGHT_HAND, NoteTimeline


def test_52_white_keys_share_a_520_pixel_keyboard_and_black_keys_sit_on_their_boundaries():
    keys = Keyboard.across(520)  # a white key is exactly 10 pixels
    assert keys.columns(21) == (0, 10)  # A0, the first white key
    assert keys.columns(60) == (230, 240)  # C4 is white key 23 (A0 B0, then 7 per octave from C1)
    assert keys.columns(61) == (237, 243)  # C#4: 5.8 pixels centred on the C-D line at 240
    assert keys.columns(108) == (510, 520)  # C8, the last
    assert int(keys.black.sum()) == 36
    c4 = 60 - 21
    assert (keys.upper_x0[c4], keys.upper_x1[c4]) == (230, 237)  # C4's upper part stops at C#4
    assert fold_onto_keys(np.array([12, 21, 108, 120])).tolist() == [24, 21, 108, 108]


def test_hands_come_from_the_tracks_and_a_one_track_piece_is_split_at_middle_c():
    named = NoteTimeline.from_piece(Piece([Note(0, 1, 50, 80, RIGHT), Note(0, 1, 70, 80, LEFT)]))
    assert named.hand.tolist() == [RIGHT_HAND, LEFT_HAND]  # the tracks win over the pitch
    plain = NoteTimeline.from_piece(Piece([Note(0, 1, 59, 80), Note(0, 1, 60, 80)]))
    assert plain.hand.tolist() == [LEFT_HAND, RIGHT_HAND]


def test_the_timeline_finds_what_falls_what_sounds_the_pedal_and_the_bars():
    piece = Piece([Note(0.0, 4.0, 60, 90), Note(1.0, 1.5, 64, 90), Note(5.0, 5.5, 67, 90)], pedal=((0.5, 2.0),),
                  grid=BeatGrid(beats=tuple(np.arange(12) * 0.5), beats_per_bar=4, first_downbeat=1))
    tl = NoteTimeline.from_piece(piece)
    assert tl.sounding(1.2).tolist() == [0, 1]
    assert tl.sounding(1.5).tolist() == [0]  # a note's end is exclusive
    assert tl.overlapping(2.0, 5.0).tolist() == [0]  # the 5 s note starts as the window ends
    assert tl.overlapping(2.0, 5.01).tolist() == [0, 2]
    assert (tl.pedal_down(0.5), tl.pedal_down(1.99), tl.pedal_down(2.0)) == (True, True, False)
    assert tl.bars.tolist() == [0.5, 2.5, 4.5]
    assert tl.bars_between(1.0, 4.5).tolist() == [2.5]


def test_bt709_yuv_of_known_colours_and_back():
    assert to_yuv(np.array([255, 255, 255])).tolist() == [235, 128, 128]
    assert to_yuv(np.array([0, 0, 0])).tolist() == [16, 128, 128]
    assert to_yuv(np.array([255, 0, 0])).tolist() == [63, 102, 240]  # BT.709 red, limited range
    colours = np.array([[72, 201, 112], [66, 135, 245], [200, 30, 40]])
    assert np.abs(to_rgb(to_yuv(colours)) - colours).max() < 3


def test_frames_split_evenly_and_short_songs_stay_in_one_range():
    assert split_frames(4368, 3, 100) == [(0, 1456), (1456, 2912), (2912, 4368)]
    assert split_frames(300, 4, 600) == [(0, 300)]
    assert split_frames(1000, 4, 400) == [(0, 500), (500, 1000)]


def _pixel(frame: Frame, y: int, x: int) -> np.ndarray:
    return frame.rgb()[y, x]


def test_a_note_reaches_the_keys_at_its_onset_lights_its_key_and_is_gone_from_silent_frames():
    width, height = 520, 200
    layout = Layout.of(width, height)
    note = Note(2.0, 3.0, 60, 127, LEFT)
    painter = FramePainter(NoteTimeline.from_piece(Piece([note])), width, height, fall_seconds=2.0)
    frame = Frame(width, height)
    left = np.array(Palette().left_hand)
    speed = layout.fall_bottom / 2.0
    # 1 s before the onset the bar's bottom is half-way down the fall area, over C4 (230..240)
    painter.paint(1.0, frame)
    bottom = int(layout.fall_bottom - speed)
    assert np.abs(_pixel(frame, bottom - 3, 235) - left).max() < 12
    assert np.abs(_pixel(frame, bottom + 3, 235) - np.array(Palette().background)).max() < 12
    # at the onset: the key is lit (in its lower part, below the black keys), its neighbour is not
    painter.paint(2.0, frame)
    assert np.abs(_pixel(frame, layout.keys_bottom - 3, 235) - left).max() < 12
    assert np.abs(_pixel(frame, layout.keys_bottom - 3, 225) - np.array(Palette().white_key)).max() < 12
    # after the note: nothing saturated over the keyboard, the key white again
    painter.paint(3.5, frame)
    rgb = frame.rgb()[: layout.fall_bottom]
    assert (rgb.max(axis=-1) - rgb.min(axis=-1)).max() < 25
    assert np.abs(_pixel(frame, layout.keys_bottom - 3, 235) - np.array(Palette().white_key)).max() < 12


def test_velocity_is_brightness_and_the_pedal_strip_lights_while_the_pedal_is_down():
    width, height = 520, 200
    layout = Layout.of(width, height)
    piece = Piece([Note(0.0, 1.0, 48, 127, RIGHT), Note(0.0, 1.0, 72, 30, RIGHT)], pedal=((0.0, 0.5),))
    painter = FramePainter(NoteTimeline.from_piece(piece), width, height)
    frame = painter.paint(0.2, Frame(width, height))
    loud, soft = (frame.rgb()[layout.keys_bottom - 3, sum(Keyboard.across(width).columns(p)) // 2] for p in (48, 72))
    assert loud.sum() > 1.5 * soft.sum()
    assert np.abs(_pixel(frame, height - 1, 10) - np.array(Palette().pedal_down)).max() < 12
    painter.paint(0.6, frame)
    assert np.abs(_pixel(frame, height - 1, 10) - np.array(Palette().pedal_up)).max() < 12


def test_the_intro_card_covers_the_first_seconds_then_fades_out():
    width, height = 64, 36
    card = Frame(width, height)
    card.data[:] = 0
    card.fill(0, height, 0, width, to_yuv(np.array([255, 0, 0])))
    painter = FramePainter(NoteTimeline.from_piece(Piece([Note(5, 6, 60, 90)])), width, height, card=card.data,
                           intro_seconds=2.0, fade_seconds=1.0)
    frame = Frame(width, height)
    red = lambda t: painter.paint(t, frame).rgb()[10, 10][0]  # noqa: E731
    assert red(0.0) > 240 and red(0.9) > 240
    assert 60 < red(1.5) < 200  # half-way through the fade
    assert red(2.0) < 40


def test_frame_sizes_must_be_even():
    with pytest.raises(ValueError, match="even"):
        Layout.of(641, 360)
