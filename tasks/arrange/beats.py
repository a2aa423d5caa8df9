"""Beat grid for the steps that line notes up with the music (melody_bass's left hand, quantise).

The grid is tracked from the notes themselves, not the audio, so it works on any transcription and
gives the same beats for the same notes; it lives apart from the steps because it is signal
processing (autocorrelation, dynamic programming) that none of them needs to know about.
"""

from __future__ import annotations

import numpy as np

from covermill.models.notes import Note


def beat_times(notes: list[Note], period: float | None = None) -> np.ndarray:
    """Beat grid covering the notes: every `period` seconds, or tracked from the note onsets.

    Tracking follows Ellis's dynamic-programming beat tracker (2007) on an onset envelope built
    from the notes (velocity-weighted onsets at 100 frames a second): the tempo comes from the
    envelope's autocorrelation, then the beats are the onset-rich frames spaced about one beat
    apart, so the grid follows small drift that a fixed period would not. Before the first and
    after the last tracked beat the median beat length continues the grid over every note.
    """
    end = max((n.end for n in notes), default=0.0)
    if period is None:
        tracked = _tracked_beats(notes, end)
        if len(tracked) < 2:
            period = 0.5  # nothing rhythmic to follow: 120 BPM
        else:
            step = float(np.median(np.diff(tracked)))
            before = np.arange(tracked[0] - step, -step, -step)[::-1]
            after = np.arange(tracked[-1] + step, end + 2 * step, step)
            return np.concatenate([before, tracked, after])
    return np.arange(0.0, end + 2 * period, period)




BEAT_FPS = 100  # onset envelope frames per second


def _tracked_beats(notes: list[Note], end: float) -> np.ndarray:
    envelope = np.zeros(int(end * BEAT_FPS) + 3)
    for note in notes:
        envelope[int(round(note.start * BEAT_FPS))] += note.velocity / 127.0
    envelope = np.convolve(envelope, np.hanning(5), mode="same")  # onsets are only ~10 ms exact
    if envelope.std() == 0:
        return np.array([])
    envelope = envelope / envelope.std()
    period = _beat_period(envelope)
    if period is None:
        return np.array([])
    return _dynamic_programming_beats(envelope, period) / BEAT_FPS


def _beat_period(envelope: np.ndarray, slowest_bpm: float = 50.0, fastest_bpm: float = 200.0) -> float | None:
    """Beat length in frames: the lag whose autocorrelation, plus half that at 2 beats and a
    quarter at 4 (beats group into bars, off-beat patterns do not), is largest once weighted
    towards 120 BPM (one octave sd)."""
    centred = envelope - envelope.mean()
    size = 1 << int(np.ceil(np.log2(2 * len(centred))))
    spectrum = np.fft.rfft(centred, size)
    autocorrelation = np.fft.irfft(spectrum * np.conj(spectrum), size)[: len(centred)]
    shortest, longest = int(60 * BEAT_FPS / fastest_bpm), int(np.ceil(60 * BEAT_FPS / slowest_bpm))
    if longest + 1 >= len(autocorrelation):
        return None
    lags = np.arange(shortest, longest + 1)
    prior = np.exp(-0.5 * np.log2(lags / (60 * BEAT_FPS / 120.0)) ** 2)
    last = len(autocorrelation) - 1
    bars = autocorrelation[lags] + 0.5 * autocorrelation[np.minimum(2 * lags, last)] + 0.25 * autocorrelation[np.minimum(4 * lags, last)]
    weighted = bars * prior
    best = int(np.argmax(weighted))
    if weighted[best] <= 0:
        return None
    lag = float(lags[best])
    if 0 < best < len(lags) - 1:  # parabolic refinement: the period sets the grid over minutes
        a, b, c = autocorrelation[lags[best] - 1 : lags[best] + 2]
        if a - 2 * b + c < 0:
            lag += 0.5 * (a - c) / (a - 2 * b + c)
    return lag


def _dynamic_programming_beats(envelope: np.ndarray, period: float, tightness: float = 100.0) -> np.ndarray:
    """Frames of the beat sequence maximising onset strength minus tightness * log(spacing/period)^2."""
    gaps = np.arange(max(1, int(round(period / 2))), int(round(2 * period)) + 1)
    penalty = -tightness * np.log(gaps / period) ** 2
    score = envelope.astype(float).copy()
    previous = np.full(len(envelope), -1)
    for t in range(gaps[0], len(envelope)):
        usable = gaps[gaps <= t]
        candidates = score[t - usable] + penalty[: len(usable)]
        best = int(np.argmax(candidates))
        if candidates[best] > 0:
            score[t] += candidates[best]
            previous[t] = t - usable[best]
    # the last beat: the best-scoring frame within the final beat's length
    tail = max(0, len(score) - int(round(period)))
    beat = tail + int(np.argmax(score[tail:]))
    beats = [beat]
    while previous[beat] >= 0:
        beat = previous[beat]
        beats.append(beat)
    return np.array(beats[::-1], dtype=float)
