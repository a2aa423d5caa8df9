"""basic-pitch (Spotify's instrument-agnostic transcriber) through its bundled ONNX model.

basic-pitch is installed without TensorFlow, so its ONNX export (`nmp.onnx`, shipped in the wheel)
is the model, run with onnxruntime on the CPU. Its own public API does the windowing
(`run_inference`) and the note decoding (`note_creation.model_output_to_notes`); `predict` is not
used because it prints to stdout.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import Field

from covermill.models.device import usable_cores
from covermill.models.generator import Readiness, shipped_weights
from covermill.models.notes import Note, sort_notes
from covermill.models.options import ModelOptions

NAME = "basic-pitch"
Threshold = Annotated[float, Field(gt=0.0, lt=1.0)]


class BasicPitchOptions(ModelOptions):
    """The knobs of basic-pitch's own CLI. Its defaults, except the two thresholds: basic-pitch's
    0.5 and 0.3 suit solo instruments; on a band mix they miss much of the accompaniment, and
    0.3 and 0.2 raised the median aligned share of the covers from 0.49 to 0.64 on the quality
    bench (bench/README.md). Lower still is denser than anyone can play (40+ notes a second)."""

    # changes how it runs, not what it writes: left out of fingerprints (tasks/core/fingerprints.py)
    RUN_ONLY: ClassVar[frozenset[str]] = frozenset({"threads"})

    onset_threshold: float = Field(0.3, gt=0.0, lt=1.0)
    frame_threshold: float = Field(0.2, gt=0.0, lt=1.0)
    # A sparse song (pads, drones, a drum-led track: a few hundred notes a minute at the thresholds
    # above) is decoded again from the same model output at each (onset, frame) pair of
    # `sparse_thresholds` in turn, until one finds `sparse_notes_per_minute` (a song where the first
    # pair finds nothing is silence and stays so); 0 turns it off. On the
    # quality bench's tuning songs the raw transcription was then identified in 23 of 24 songs
    # instead of 20 (median aligned share 0.62 -> 0.67); lower pairs for every song made the dense
    # ones unplayable (bench/README.md).
    sparse_notes_per_minute: float = Field(800.0, ge=0.0)
    sparse_thresholds: list[tuple[Threshold, Threshold]] = [(0.2, 0.15), (0.15, 0.1)]
    minimum_note_length_ms: float = Field(127.70, gt=0.0)
    minimum_frequency: float | None = None  # Hz; None keeps every pitch the model knows (A0..C8)
    maximum_frequency: float | None = None
    melodia_trick: bool = True
    threads: int = Field(0, ge=0)  # onnxruntime intra-op threads; 0 = every core this process may use


Options = BasicPitchOptions  # the name the generator contract asks for (models/generator.py)


@contextmanager
def _quiet_import() -> Iterator[None]:
    # basic_pitch warns on import about every backend it could not find (TensorFlow, CoreML,
    # TFLite) and resampy about pkg_resources: noise that suggests installing what must not be.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            yield
    finally:
        logging.disable(previous)


def weights_path() -> Path:
    """The ONNX model shipped in basic-pitch's wheel, found without importing basic-pitch (whose
    import logs warnings about the TensorFlow, TFLite and CoreML runtimes it does not need here)."""
    spec = importlib.util.find_spec("basic_pitch")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("basic-pitch is not installed")
    return Path(spec.submodule_search_locations[0]) / "saved_models" / "icassp_2022" / "nmp.onnx"


class BasicPitchGenerator:
    name = NAME

    def __init__(self, options: BasicPitchOptions):
        # onnxruntime otherwise writes a device id and a usage database under ~/.cache/Microsoft and
        # a .ses file in $TMPDIR on every load, offline settings or not
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        import onnxruntime

        with _quiet_import():
            from basic_pitch import constants, inference, note_creation

        self.options = options
        self._inference = inference
        self._note_creation = note_creation
        self._frames_per_second = constants.AUDIO_SAMPLE_RATE / constants.FFT_HOP
        self.model_path = weights_path()
        self.model = inference.Model(self.model_path)
        if self.model.model_type != inference.Model.MODEL_TYPES.ONNX:
            raise RuntimeError(f"basic-pitch loaded {self.model_path} as {self.model.model_type}, expected ONNX")
        # Model() opens the session with onnxruntime's defaults; reopen it with an explicit thread
        # count so a small machine is not oversubscribed by inter-op threads.
        session_options = onnxruntime.SessionOptions()
        session_options.intra_op_num_threads = options.threads or usable_cores()
        session_options.inter_op_num_threads = 1
        self.model.model = onnxruntime.InferenceSession(
            str(self.model_path), sess_options=session_options, providers=["CPUExecutionProvider"]
        )

    def transcribe(self, audio_path: Path) -> list[Note]:
        o = self.options
        output = self._inference.run_inference(Path(audio_path), self.model)
        minutes = len(output["note"]) / self._frames_per_second / 60.0
        notes = self._decode(output, o.onset_threshold, o.frame_threshold)
        for onset, frame in o.sparse_thresholds:  # a sparse song: lower thresholds, same model output
            # nothing at all is silence, not a sparse song: there the model's output idles near 0.1
            # everywhere, and a frame threshold of 0.1 decodes that floor into notes
            if not notes or len(notes) >= o.sparse_notes_per_minute * minutes:
                break
            notes = self._decode(output, onset, frame)
        return notes

    def _decode(self, output: dict[str, Any], onset_threshold: float, frame_threshold: float) -> list[Note]:
        """Notes from the model's output (basic-pitch's note creation) at the given thresholds."""
        import numpy as np

        o = self.options
        # Silence makes basic-pitch rescale by a zero maximum (0/0); it then finds no notes, rightly.
        with np.errstate(invalid="ignore", divide="ignore"):
            _, events = self._note_creation.model_output_to_notes(
                output,
                onset_thresh=onset_threshold,
                frame_thresh=frame_threshold,
                min_note_len=int(round(o.minimum_note_length_ms / 1000 * self._frames_per_second)),
                min_freq=o.minimum_frequency,
                max_freq=o.maximum_frequency,
                melodia_trick=o.melodia_trick,
            )
        notes = [
            Note(float(start), float(end), int(pitch), min(127, max(1, int(round(127 * float(amplitude))))))
            for start, end, pitch, amplitude, _bends in events
            if end > start
        ]
        return sort_notes(notes)

    def __repr__(self) -> str:
        return f"BasicPitchGenerator({self.options.model_dump()})"


def load(options: BasicPitchOptions | Mapping[str, Any] | None = None) -> BasicPitchGenerator:
    """The contract's `load` (a mapping is validated first, for callers outside config)."""
    return BasicPitchGenerator(BasicPitchOptions.coerce(options))


def check(options: BasicPitchOptions) -> Readiness:
    """The ONNX model shipped in basic-pitch's wheel is on disk (found, not loaded)."""
    return shipped_weights("basic-pitch", weights_path)
