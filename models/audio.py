"""Reading audio for the models: float32 samples at the rate a model was trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def resample(samples: np.ndarray, rate: int, target: int, quality: str = "HQ") -> np.ndarray:
    """float32 samples at `target` (soxr: milliseconds where librosa's best takes seconds)."""
    if rate != target:
        import soxr

        samples = soxr.resample(samples, rate, target, quality=quality)
    return np.ascontiguousarray(samples, dtype=np.float32)


def read_audio(path: Path, rate: int, mono: bool = False, quality: str = "HQ") -> np.ndarray:
    """Samples of an audio file at `rate`, shaped (samples, channels), or (samples,) when `mono`."""
    import soundfile

    samples, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if mono:
        samples = samples.mean(axis=1)
    return resample(samples, file_rate, rate, quality)


def essentia_standard() -> Any:
    """essentia.standard, imported at first use and quietly: it takes 0.5 s and logs an INFO line on
    stderr as it loads (MusicExtractorSVM), which every covermill command paid, or showed, before."""
    import essentia

    essentia.log.infoActive = False  # before essentia.standard's import, which logs
    import essentia.standard

    return essentia.standard
