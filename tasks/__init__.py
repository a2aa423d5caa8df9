"""The stages, grouped by concern; each stage module owns its settings model, its pure functions and a thin Prefect task.

core/     what every stage shares: errors, settings base, records, the song folder layout, the ledger, files, audio, MIDI
cover/    from a source to candidate MIDIs and their renders: download, playlist, generate, render
arrange/  a transcription made playable piano: styles, their steps, the beat grid
rank/     which candidate wins: Qmax, its cross-recurrence alignment, defects, the ranking
media/    what a viewer sees: thumbnail (art, picture, lettering, fonts), video, metadata, the review gallery
publish/  YouTube: authorization, the client, the request, quota, the queue, resumable upload, the channel
"""

from covermill.tasks.cover.fluidsynth_library import preload_fluidsynth

preload_fluidsynth()  # before pretty_midi (core/midi.py) imports pyfluidsynth, which prints to stdout under $CI
