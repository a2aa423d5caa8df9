"""Which generators this environment has: the `covermill.generators` entry-point group.

Listing reads the installed distributions' metadata (their entry_points.txt) and imports nothing,
neither a model library nor the generator modules themselves; a generator's module is imported
only when its options are validated, it is checked by `covermill doctor`, or it is loaded.

Not cached: one listing took 3.8 ms here (median of 20 calls, the first 4.9 ms; 178 distributions
in the venv, of which entry_points() itself is 2.7 ms): a config read lists a few times, a song's
generate stage a few per generator, which is nothing beside loading or running a model. Reading
afresh means a distribution installed while the process runs (or put on sys.path by a test) is
seen with no refresh call to forget.

Two distributions may register the same name. covermill's own entry wins, so no package replaces
a built-in by accident; between others the first distribution name in alphabetical order wins.
Either way a DuplicateGenerator warning names both, and `Registration.shadowed` keeps the losers
for `covermill doctor` to show.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

from covermill.models.errors import BrokenGenerator, UnknownGenerator
from covermill.models.options import ModelOptions

GROUP = "covermill.generators"
OWN_DISTRIBUTION = "covermill"


class DuplicateGenerator(UserWarning):
    """Two distributions register one generator name; the message says which one is used."""


@dataclass(frozen=True)
class Registration:
    """One generator as its distribution's metadata declares it (nothing imported yet)."""

    name: str  # as config.yaml writes it, e.g. basic-pitch
    module: str  # the module the entry point names, e.g. covermill.models.basic_pitch
    distribution: str  # "name version" of the distribution that provides it
    entry_point: EntryPoint = field(repr=False, compare=False)
    shadowed: tuple[str, ...] = ()  # other distributions registering the same name, ignored


def _distribution_name(entry: EntryPoint) -> str:
    dist = entry.dist
    return dist.metadata["Name"] if dist is not None else "an unnamed distribution"


def _distribution(entry: EntryPoint) -> str:
    dist = entry.dist
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else "an unnamed distribution"


def _precedence(entry: EntryPoint) -> tuple[bool, str, str]:
    name = _distribution_name(entry).lower().replace("_", "-")
    return (name != OWN_DISTRIBUTION, name, entry.value)


def _choose(name: str, candidates: list[EntryPoint]) -> Registration:
    ordered = sorted(candidates, key=_precedence)
    chosen, others = ordered[0], ordered[1:]
    shadowed = tuple(f"{_distribution(e)} ({e.value})" for e in others)
    if shadowed:
        warnings.warn(f"generator {name!r} is registered by {_distribution(chosen)} ({chosen.value}) and by "
                      f"{', '.join(shadowed)}; using {_distribution(chosen)}'s", DuplicateGenerator, stacklevel=3)
    return Registration(name, chosen.value, _distribution(chosen), chosen, shadowed)


def registrations() -> dict[str, Registration]:
    """Every registered generator by name, in name order, read from metadata alone."""
    by_name: dict[str, list[EntryPoint]] = {}
    for entry in entry_points(group=GROUP):
        by_name.setdefault(entry.name, []).append(entry)
    return {name: _choose(name, by_name[name]) for name in sorted(by_name)}


def names() -> list[str]:
    """The generator names config.yaml may use, without importing anything."""
    return list(registrations())


def registration(name: str) -> Registration:
    """The registration of `name`; UnknownGenerator lists the known ones when there is none."""
    found = registrations()
    if name not in found:
        raise UnknownGenerator(f"unknown generator {name!r}; known generators: {', '.join(found) or 'none installed'}")
    return found[name]


def generator_module(name: str) -> ModuleType:
    """The module registered as `name`, imported, with its contract checked (models/generator.py)."""
    entry = registration(name)
    try:
        module = entry.entry_point.load()
    except Exception as exc:  # a third party's import may fail any way; the sentence names who to ask
        raise BrokenGenerator(f"generator {name!r} from {entry.distribution}: cannot import {entry.module} "
                              f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(module, ModuleType):
        raise BrokenGenerator(f"generator {name!r} from {entry.distribution}: the entry point must name a module, "
                              f"not {entry.module}")
    options = getattr(module, "Options", None)
    if not (isinstance(options, type) and issubclass(options, ModelOptions)) or not callable(getattr(module, "load", None)):
        raise BrokenGenerator(f"generator {name!r} from {entry.distribution}: {entry.module} needs an `Options` "
                              f"model (a covermill.models.options.ModelOptions) and a `load(options)` function")
    return module


def options_model(name: str) -> type[ModelOptions]:
    """The pydantic model of `name`'s options (imports its module, not its model library)."""
    return generator_module(name).Options
