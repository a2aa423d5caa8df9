"""Import pyfluidsynth without letting it write to our standard output.

pyfluidsynth prints where it found libfluidsynth ("'fluidsynth' was found at libfluidsynth.so.3.")
to stdout whenever the environment variable CI is set. A process whose stdout someone reads (a
worker reporting progress, a command's output) must not carry that line, and a user's stderr has
no use for it either, so the import's output is dropped.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from types import ModuleType


def import_fluidsynth() -> ModuleType:
    """The `fluidsynth` module; raises ImportError or OSError when libfluidsynth cannot be loaded."""
    with contextlib.redirect_stdout(io.StringIO()):
        return importlib.import_module("fluidsynth")


def preload_fluidsynth() -> None:
    """Import pyfluidsynth now, quietly, so that pretty_midi's own import of it later prints nothing.

    A missing libfluidsynth is not an error here: the renderer raises it where it is needed, and
    `covermill doctor` reports it.
    """
    with contextlib.suppress(ImportError, OSError):
        import_fluidsynth()
