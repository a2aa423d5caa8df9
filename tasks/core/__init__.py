"""What every stage shares: the one error type, the settings base, the typed records, the song folder layout,
the ledger, atomic files, audio and MIDI I/O, templates, the Prefect task decorator, the gpu slot and run artifacts."""
