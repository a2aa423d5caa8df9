"""The score stage: the winner's MIDI as sheet music, MusicXML and an engraved PDF, beside the video.

notation.py  the notes as bars of note values on the song's beat grid (pure functions on arrays)
musicxml.py  those bars as a two-staff MusicXML piano score (music21)
engrave.py   MusicXML to PDF and a PNG of page 1 (LilyPond)
stage.py     the settings, the stage's function and its Prefect task
"""
