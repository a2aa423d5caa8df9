"""transkun (a piano transcriber, torch) with the 2.0 weights its wheel ships.

This follows what `transkun/transcribe.py`'s main() does, through the Python API. One wrinkle:
transkun builds its mel filterbank with torchaudio, which is deliberately not installed (its wheel
cannot load beside this torch, and transformers imports torchaudio whenever it is present). The
filterbank is computed here instead and handed to transkun through a stand-in module that exists
only while the model is constructed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import math
import sys
import types
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from covermill.models.audio import read_audio
from covermill.models.device import resolve_device, usable_cores
from covermill.models.generator import Readiness, shipped_weights
from covermill.models.notes import Note, sort_notes
from covermill.models.options import Device, ModelOptions

NAME = "transkun"
WEIGHTS = "2.0.pt"
CONFIG = "2.0.conf"
WINDOW_SECONDS = 16.0  # segmentSizeInSecond in 2.0.conf


class TranskunOptions(ModelOptions):
    # changes how it runs, not what it writes: left out of fingerprints (tasks/core/fingerprints.py)
    RUN_ONLY: ClassVar[frozenset[str]] = frozenset({"threads"})

    device: Device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N"
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 = every core this process may use
    # transkun reads 16 s windows every 8 s (its own setting, used when 0). A longer hop is faster
    # (12 s: ~40% less time) but loses notes at window edges (F1 0.88 against the 8 s hop, measured).
    hop_seconds: float = Field(0.0, ge=0.0, le=WINDOW_SECONDS)


Options = TranskunOptions  # the name the generator contract asks for (models/generator.py)


def melscale_fbanks(n_freqs: int, f_min: float, f_max: float, n_mels: int, sample_rate: int,
                    norm: str | None = None, mel_scale: str = "htk"):
    """Triangular mel filterbank, shape (n_freqs, n_mels): torchaudio.functional.melscale_fbanks.

    Only what transkun asks for is implemented (HTK mel scale, unnormalised triangles); it equals
    librosa.filters.mel(htk=True, norm=None) transposed. Filter m rises linearly from mel point m
    to m+1 and falls to m+2, the n_mels+2 points spread evenly on the mel scale over f_min..f_max.
    """
    import torch

    if norm is not None or mel_scale != "htk":
        raise NotImplementedError("only the HTK mel scale without normalisation is implemented")

    def hz_to_mel(hz: float) -> float:
        return 2595.0 * math.log10(1.0 + hz / 700.0)

    bin_freqs = torch.linspace(0, sample_rate // 2, n_freqs)
    mel_points = torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    hz_points = 700.0 * (10.0 ** (mel_points / 2595.0) - 1.0)
    widths = hz_points[1:] - hz_points[:-1]
    offsets = hz_points.unsqueeze(0) - bin_freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


@contextmanager
def torchaudio_stand_in() -> Iterator[None]:
    """Let `import torchaudio` inside transkun find our filterbank, and nothing else, meanwhile.

    A real torchaudio (should one ever be importable) is left alone; otherwise the stand-in is
    removed afterwards so no other code in the process mistakes it for the real package.
    """
    if "torchaudio" in sys.modules:
        yield
        return
    stand_in = types.ModuleType("torchaudio", "covermill stand-in: only functional.melscale_fbanks, for transkun")
    stand_in.functional = types.SimpleNamespace(melscale_fbanks=melscale_fbanks)
    sys.modules["torchaudio"] = stand_in
    try:
        yield
    finally:
        if sys.modules.get("torchaudio") is stand_in:
            del sys.modules["torchaudio"]


def pretrained_file(name: str) -> Path:
    return Path(str(importlib.resources.files("transkun") / "pretrained" / name))


def weights_path() -> Path:
    return pretrained_file(WEIGHTS)


class TranskunGenerator:
    name = NAME
    holds_gpu_slot = True  # a torch model: its calls run inside the GPU slot

    def __init__(self, options: TranskunOptions):
        import moduleconf
        import torch

        self.options = options
        self.device = resolve_device(options.device)
        torch.set_num_threads(options.threads or usable_cores())
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated")  # transkun's CRF module
            config = moduleconf.parseFromFile(str(pretrained_file(CONFIG)))
            with torchaudio_stand_in():
                model = config["Model"].module.TransKun(conf=config["Model"].config)
        checkpoint = torch.load(pretrained_file(WEIGHTS), map_location=self.device)
        state = checkpoint["best_state_dict"] if "best_state_dict" in checkpoint else checkpoint["state_dict"]
        model.load_state_dict(state, strict=False)
        self.model = model.to(self.device).eval()

    def transcribe(self, audio_path: Path) -> list[Note]:
        import torch

        samples = read_audio(Path(audio_path), self.model.fs)  # (samples, channels), as transcribe.py reads it
        with torch.no_grad(), warnings.catch_warnings():
            # transkun calls torch.utils.checkpoint even at inference; torch then warns on every
            # segment about training-only concerns.
            warnings.filterwarnings("ignore", message=r".*use_reentrant parameter should be passed explicitly")
            warnings.filterwarnings("ignore", message="None of the inputs have requires_grad=True")
            windows = {}
            if self.options.hop_seconds:
                windows = {"stepInSecond": self.options.hop_seconds, "segmentSizeInSecond": self.model.segmentSizeInSecond}
            events = self.model.transcribe(torch.from_numpy(samples).to(self.device), discardSecondHalf=False, **windows)
        # Negative "pitches" are pedal controllers (transkun.Data.writeMidi writes them as CCs);
        # a Note list has no place for them.
        notes = [
            Note(float(e.start), float(e.end), int(e.pitch), min(127, max(1, int(e.velocity))))
            for e in events
            if e.pitch > 0 and e.end > e.start
        ]
        return sort_notes(notes)


def load(options: TranskunOptions | Mapping[str, Any] | None = None) -> TranskunGenerator:
    """The contract's `load` (a mapping is validated first, for callers outside config)."""
    return TranskunGenerator(TranskunOptions.coerce(options))


def check(options: TranskunOptions) -> Readiness:
    """The 2.0 weights shipped in transkun's wheel are on disk (found, not loaded: torch is slow to import)."""
    return shipped_weights("transkun", weights_path, digits=0)
