"""Arrangement: a dense transcription turned into piano a person could play (styles made of steps, on a beat grid)."""
