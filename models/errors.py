"""What a model backend raises that its callers act on, in one place.

The generate and thumbnail stages turn each of these into a different outcome (one sentence and
stop, skip this generator for this song, fall back to the procedural art), so they are classes of
their own rather than messages to parse; none of them needs a model library to import.
"""

from __future__ import annotations


class UnknownGenerator(ValueError):
    """No distribution registers a generator by this name in the `covermill.generators` group."""


class BrokenGenerator(RuntimeError):
    """A registered generator's module cannot be imported or does not fulfil the contract of
    models/generator.py (an `Options` model and a `load`); the message names the distribution."""


class ModelMissing(RuntimeError):
    """The model's weights are not on this machine; the message says where to put them."""


class SongNotSupported(RuntimeError):
    """This generator cannot handle this song (e.g. no beat grid); the others still can."""


class OutOfMemory(RuntimeError):
    """Even one item at a time does not fit in the device's memory."""
