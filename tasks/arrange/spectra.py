"""One pass over a song's audio frames for the analysis: HPCP chroma and the bass's onset strength.

Frames of 4096 samples every 1024 (93 ms windows every 23 ms at 44.1 kHz) go through essentia's
Windowing, Spectrum, SpectralPeaks and HPCP (36 bins, 40 Hz .. 5 kHz, 8 harmonics): the chroma that
the chords, the key and the harmonic change between beats are read from. The same spectra give the
bass's onset strength, the rise of log energy below 200 Hz (kick drum, bass notes), which tells the
downbeats. The loop runs over frames, not samples: 0.26 s per minute of audio on this 2-core machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from covermill.models.audio import essentia_standard

RATE = 44100  # essentia's rhythm and melody algorithms assume it
FRAME, HOP = 4096, 1024
HPCP_SIZE = 36  # three bins a semitone; bin 0 is A (essentia's reference frequency, 440 Hz)
BASS_HZ = 200.0  # the bass's onsets: energy below this


@dataclass(frozen=True, eq=False)
class Frames:
    times: np.ndarray  # (n,) frame centres, seconds
    hpcp: np.ndarray  # (n, 36) float32, each frame's maximum 1 (0 in silence)
    bass_flux: np.ndarray  # (n,) rise of log energy below BASS_HZ since the previous frame, >= 0

    @property
    def hop_seconds(self) -> float:
        return HOP / RATE


def spectral_frames(samples: np.ndarray) -> Frames:
    """HPCP and bass flux of mono 44.1 kHz float32 `samples` (m,)."""
    es = essentia_standard()  # here, not at import: essentia loads slowly and logs

    window = es.Windowing(type="blackmanharris62")
    spectrum = es.Spectrum(size=FRAME)
    peaks = es.SpectralPeaks(orderBy="magnitude", magnitudeThreshold=1e-5, minFrequency=40, maxFrequency=5000,
                             maxPeaks=60, sampleRate=RATE)
    hpcp = es.HPCP(size=HPCP_SIZE, sampleRate=RATE, minFrequency=40, maxFrequency=5000, bandPreset=True,
                   harmonics=8, nonLinear=True, weightType="cosine", normalized="unitMax")
    low_bins = int(BASS_HZ * FRAME / RATE) + 1
    chroma, low = [], []
    for frame in es.FrameGenerator(np.asarray(samples, dtype=np.float32), frameSize=FRAME, hopSize=HOP, startFromZero=True):
        magnitudes = spectrum(window(frame))
        chroma.append(hpcp(*peaks(magnitudes)))
        low.append(magnitudes[1:low_bins])
    if not chroma:
        return Frames(np.zeros(0), np.zeros((0, HPCP_SIZE), np.float32), np.zeros(0))
    level = np.log1p(1000.0 * np.array(low))  # the log keeps a quiet bass line's onsets beside a loud kick's
    flux = np.maximum(0.0, np.diff(level, axis=0, prepend=level[:1])).sum(axis=1)
    times = (np.arange(len(chroma)) * HOP + FRAME / 2) / RATE
    return Frames(times, np.array(chroma, dtype=np.float32), flux)


def pitch_class_profile(hpcp: np.ndarray) -> np.ndarray:
    """(k, 36) HPCP -> (k, 12) pitch-class energy, index 0 = C (each semitone's three bins, centred)."""
    semitones = np.roll(hpcp, 1, axis=1).reshape(len(hpcp), 12, 3).sum(axis=2)  # index 0 = A
    return np.roll(semitones, 3, axis=1)  # A is pitch class 9


def segment_chroma(frames: Frames, edges: np.ndarray) -> np.ndarray:
    """(k, 12) unit-length mean chroma of the frames centred in [edges[i], edges[i+1]) for the k + 1
    `edges` (seconds, increasing); a segment shorter than a hop takes its nearest frame; zeros where silent."""
    n = len(frames.times)
    if n == 0:
        return np.zeros((max(0, len(edges) - 1), 12))
    profile = pitch_class_profile(frames.hpcp.astype(float))
    starts = np.clip(np.searchsorted(frames.times, edges[:-1]), 0, n - 1)
    stops = np.clip(np.searchsorted(frames.times, edges[1:]), 0, n)
    cumulative = np.vstack([np.zeros((1, 12)), np.cumsum(profile, axis=0)])
    counts = stops - starts
    means = np.where(counts[:, None] > 0, (cumulative[np.maximum(stops, starts)] - cumulative[starts])
                     / np.maximum(counts, 1)[:, None], profile[starts])
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return np.divide(means, norms, out=np.zeros_like(means), where=norms > 1e-9)


def harmonic_change(chroma: np.ndarray) -> np.ndarray:
    """(k,) how much the harmony changes as each segment starts: 1 - cosine similarity with the one
    before (0 for the first; 1 next to silence). `chroma` (k, 12) unit rows."""
    change = np.zeros(len(chroma))
    if len(chroma) > 1:
        change[1:] = 1.0 - np.sum(chroma[1:] * chroma[:-1], axis=1)
    return change


def bass_onsets_at(frames: Frames, times: np.ndarray, reach: int = 2) -> np.ndarray:
    """(k,) the strongest bass flux within `reach` frames (46 ms) of each time (k,): a kick or bass note
    on that beat (the tracker's beats sit within a frame or two of the onsets)."""
    if len(frames.times) == 0:
        return np.zeros(len(times))
    padded = np.pad(frames.bass_flux, reach)
    strongest = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).max(axis=1)
    nearest = np.clip(np.round((np.asarray(times) - frames.times[0]) / frames.hop_seconds).astype(int), 0, len(strongest) - 1)
    return strongest[nearest]
