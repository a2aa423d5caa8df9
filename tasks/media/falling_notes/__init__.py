"""The falling-notes video: the winner's MIDI drawn as notes falling onto an 88-key keyboard.

keyboard.py  where each key lies on the frame
timeline.py  the notes, hands, pedal and bars as arrays, looked up by time
colours.py   the palette, in RGB and in the video's YUV
painter.py   one frame at a time, drawn straight into a yuv420p buffer
encoder.py   time ranges rendered in parallel processes, joined, and the audio muxed in
"""
