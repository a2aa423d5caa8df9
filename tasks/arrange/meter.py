"""Where the bars start and how the beats divide: the meter, the downbeat phase and the subdivision.

essentia tracks beats, not bars. Bars show in the music as change: the harmony tends to change and
the bass (kick, bass note) to strike on the first beat of a bar. Per beat the analysis measures
both, the harmonic change (1 - cosine of consecutive beats' chroma) and the bass's onset strength,
each as a z-score over the song. A meter of m beats with its first downbeat at beat p predicts
more of both on beats p, p + m, p + 2m, ...; its contrast is how much more (the mean over those
beats minus the mean over all).

- Meter: 3 when the best contrast for three (harmonic change plus bass, each its best phase)
  beats that for four by more than METER_MARGIN, else 4 (also when unsure). Measured on 25 s
  windows: the 50 of the ten planetblupi recordings (all 4/4) scored -2.14 .. -0.22 where the beats
  were tracked right (38) and at most 0.14 where not, so all 50 are counted in four; of 30 waltzes
  (3/4 versions of the same songs: each bar's fourth beat cut from the MIDI, rendered with
  FluidSynth) 11 of the 14 tracked right scored over the margin (-0.04 .. 1.56; a margin of 0.1
  would take 13 of them, and one 4/4 window with wrong beats), 17 of all 30.
- Downbeat phase: the p with the best contrast of harmonic change + BASS_WEIGHT x bass. On the 52
  windows tracked right: harmonic change alone 48 right, with a quarter of the bass 50, half 48,
  equal weight 37, the bass alone 22 (a kick on 1 and 3 leaves it two beats unsure).
- Subdivision (steps per beat): the onsets' positions inside their beat, shifted so that the
  onsets near the beat sit on it (the onset detector and the tracker disagree by up to 1/10 beat).
  The off-beat onsets within 1/24 beat of a grid point vote: 1/3 and 2/3 for triplets, 1/4, 1/2 and
  3/4 for straight time; 3 when TRIPLET_SHARE of the votes are triplets, else 4. Measured on the
  planetblupi recordings' audio onsets (25 s windows): the song in swung eighths (music007: notes
  at 0, 2/3 and some 1/3) 0.87 .. 1.0; the nine straight songs 0.0 .. 0.55 (the highest, music006,
  plays on 1/3 and 5/6 besides 0 and 1/2), so all 50 windows come out right. On the scores' notes
  instead (what a transcription gives): 0.96 .. 1.0 against 0.0 .. 0.48.
"""

from __future__ import annotations

import numpy as np

METERS = (3, 4)
METER_MARGIN = 0.15  # z-score units (module docstring: 4/4 windows up to 0.14, waltzes mostly 0.3 .. 1.6)
BASS_WEIGHT = 0.25
TRIPLET_SHARE = 0.7
ON_BEAT = 1 / 8  # onsets this close to a beat (in beats) set the onset detector's offset
VOTE_TOLERANCE = 1 / 24  # beats; 1/4 and 1/3 lie 1/12 apart
MIN_VOTES = 12  # fewer voting onsets: too little to tell, straight time


def zscore(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values, dtype=float)


def phase_contrast(strength: np.ndarray, meter: int) -> np.ndarray:
    """(meter,) mean of `strength` (k,) over beats p, p + meter, ... minus its mean, for each phase p."""
    if len(strength) < meter:
        return np.zeros(meter)
    return np.array([strength[p::meter].mean() for p in range(meter)]) - strength.mean()


def bar_phase(change: np.ndarray, bass: np.ndarray) -> tuple[int, int]:
    """(beats per bar, index of the first downbeat) from per-beat harmonic change and bass onset
    strength, both (k,) (module docstring)."""
    change, bass = zscore(np.asarray(change, float)), zscore(np.asarray(bass, float))
    best = {m: phase_contrast(change, m).max() + phase_contrast(bass, m).max() for m in METERS}
    meter = 3 if best[3] > best[4] + METER_MARGIN else 4
    phase = int(np.argmax(phase_contrast(change + BASS_WEIGHT * bass, meter)))
    return meter, phase


def subdivision(onsets: np.ndarray, beats: np.ndarray) -> int:
    """Steps per beat, 3 (triplets) or 4 (straight), from onset times (n,) on the beats (k,), seconds."""
    onsets, beats = np.asarray(onsets, float), np.asarray(beats, float)
    if len(beats) < 2:
        return 4
    inside = onsets[(onsets > beats[0]) & (onsets < beats[-1])]
    where = np.interp(inside, beats, np.arange(len(beats))) % 1.0
    around = (where + 0.5) % 1.0 - 0.5  # -0.5 .. 0.5 about the nearest beat
    near = around[np.abs(around) < ON_BEAT]
    where = (where - (np.median(near) if len(near) else 0.0)) % 1.0
    triplet = sum(int(np.sum(np.abs(where - p) < VOTE_TOLERANCE)) for p in (1 / 3, 2 / 3))
    straight = sum(int(np.sum(np.abs(where - p) < VOTE_TOLERANCE)) for p in (1 / 4, 1 / 2, 3 / 4))
    if triplet + straight < MIN_VOTES:
        return 4
    return 3 if triplet >= TRIPLET_SHARE * (triplet + straight) else 4
