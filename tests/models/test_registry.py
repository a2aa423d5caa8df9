"""Generators come from the `covermill.generators` entry-point group: listed from metadata alone,
and a third-party distribution on disk adds one that config, the generate stage and doctor take up."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from pydantic import ValidationError

from covermill.flows.config import load_config
from covermill.models import registry
from covermill.models.errors import BrokenGenerator, UnknownGenerator
from covermill.models.generator import cover_variants, load_generator
from covermill.tasks.arrange.styles import ArrangeSettings
from covermill.tasks.core.audio import decode_to_wav
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.midi import read_midi
from covermill.tasks.core.records import Song
from covermill.tasks.cover.generate import GenerateSettings, make_candidates

COVERMILL = str(Path(sys.executable).with_name("covermill"))
BUILT_IN = {"basic-pitch": "covermill.models.basic_pitch", "transkun": "covermill.models.transkun",
            "pop2piano": "covermill.models.pop2piano"}

# A third party's generator, as its author would write it against covermill's contract
# (models/generator.py): Options, load, check. It hears loudness, not pitch: one note per loud
# step of the song, climbing an arpeggio from `root`.
TOY_MODULE = '''
"""A toy transcriber from another distribution."""

from pydantic import Field

from covermill.models.generator import Readiness
from covermill.models.notes import Note
from covermill.models.options import ModelOptions

ARPEGGIO = (0, 4, 7, 12)


class Options(ModelOptions):
    root: int = Field(60, ge=21, le=96)
    step_s: float = Field(0.25, gt=0.0)
    threshold: float = Field(0.01, ge=0.0)


class ToyTranscriber:
    name = "toy"

    def __init__(self, options):
        self.options = options

    def transcribe(self, audio_path):
        import numpy as np
        import soundfile

        samples, rate = soundfile.read(str(audio_path), dtype="float32", always_2d=True)
        mono = samples.mean(axis=1)
        hop = max(1, int(self.options.step_s * rate))
        notes = []
        for number, start in enumerate(range(0, len(mono) - hop + 1, hop)):
            level = float(np.sqrt(np.mean(mono[start:start + hop] ** 2)))
            if level > self.options.threshold:
                pitch = self.options.root + ARPEGGIO[number % len(ARPEGGIO)]
                velocity = max(1, min(127, int(level * 400)))
                notes.append(Note(start / rate, (start + hop) / rate, pitch, velocity))
        return notes


def load(options: Options) -> ToyTranscriber:
    return ToyTranscriber(options)


def check(options: Options) -> Readiness:
    return Readiness(True, f"no weights needed; arpeggio from {options.root}")
'''


def write_distribution(site: Path, name: str, version: str, entries: dict[str, str], modules: dict[str, str]) -> None:
    """A distribution installed the way pip leaves one: its modules and a <name>-<version>.dist-info."""
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{entry} = {target}\n" for entry, target in entries.items())
    (info / "entry_points.txt").write_text(f"[{registry.GROUP}]\n{lines}")
    importlib.invalidate_caches()  # importlib.metadata caches a folder's listing by its mtime


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on sys.path holding third-party distributions (added by each test)."""
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))  # also invalidates importlib's caches
    before = set(sys.modules)
    yield folder
    for module in set(sys.modules) - before:
        if sys.modules[module] and str(folder) in str(getattr(sys.modules[module], "__file__", "")):
            del sys.modules[module]


@pytest.fixture
def toy(site) -> Path:
    write_distribution(site, "toy-transcriber", "1.2", {"toy": "toy_transcriber"}, {"toy_transcriber": TOY_MODULE})
    return site


LIST_IN_A_FRESH_PROCESS = """
import json, sys, time
started = time.perf_counter()
from covermill.models import registry
imported = time.perf_counter()
entries = registry.registrations()
listed = time.perf_counter()
heavy = ["torch", "transformers", "onnxruntime", "diffusers", "basic_pitch", "transkun", "essentia", "toy_transcriber",
         "covermill.models.basic_pitch", "covermill.models.transkun", "covermill.models.pop2piano"]
print(json.dumps({"entries": {name: [e.module, e.distribution] for name, e in entries.items()},
                  "loaded": [m for m in heavy if m in sys.modules],
                  "import_s": imported - started, "list_s": listed - imported}))
"""


def list_in_a_fresh_process(pythonpath: Path | None = None) -> dict:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-c", LIST_IN_A_FRESH_PROCESS], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_group_lists_the_built_ins_without_importing_a_model_library(toy):
    listed = list_in_a_fresh_process(toy)
    assert {name: module for name, (module, _) in listed["entries"].items()} == {**BUILT_IN, "toy": "toy_transcriber"}
    assert listed["entries"]["basic-pitch"][1].startswith("covermill ")
    assert listed["entries"]["toy"][1] == "toy-transcriber 1.2"
    assert listed["loaded"] == []  # neither a model library nor a generator's own module
    # 3.8 ms measured here (178 distributions); the bound only catches an import sneaking in
    assert listed["list_s"] < 0.5, listed


def test_an_unknown_name_lists_the_known_ones():
    assert set(BUILT_IN) <= set(registry.names())
    with pytest.raises(UnknownGenerator, match=r"^unknown generator 'etude'; known generators: basic-pitch, pop2piano, transkun"):
        registry.registration("etude")
    with pytest.raises(UnknownGenerator):
        load_generator("etude")


def test_a_third_party_generator_is_listed_configured_and_validated(toy, tmp_path):
    entry = registry.registration("toy")
    assert (entry.module, entry.distribution, entry.shadowed) == ("toy_transcriber", "toy-transcriber 1.2", ())
    assert "toy" in registry.names()

    settings = GenerateSettings(generators=["basic-pitch", "toy"], options={"toy": {"root": 48}})
    assert settings.options_for("toy").root == 48 and settings.options_for("toy").step_s == 0.25
    assert cover_variants("toy", settings.options_for("toy")) is None  # a transcriber: arranged in every style

    config = tmp_path / "config.yaml"
    config.write_text("generate:\n  generators: [toy]\n  options:\n    toy: {root: 100}\n")
    with pytest.raises(CovermillError) as bad:
        load_config(config)
    assert str(bad.value) == (f"{config}: setting 'generate.options.toy.root' is invalid: Input should be less than "
                              f"or equal to 96; fix it in the file.")
    config.write_text("generate:\n  generators: [toy]\n  options:\n    toy: {rot: 50}\n")
    with pytest.raises(CovermillError) as misspelt:
        load_config(config)
    assert str(misspelt.value) == (f"{config}: unknown setting 'generate.options.toy.rot'; check its spelling "
                                   f"(known here: root, step_s, threshold).")


def test_a_third_party_generator_makes_candidates_from_a_real_clip(toy, short_clips, tmp_path):
    folder = SongFolder(tmp_path / "out", "clip")
    decode_to_wav(short_clips["song_a"], folder.audio)
    song = Song(id="clip", source=str(short_clips["song_a"]), source_id="file:clip", title="Clip", duration=10.0,
                original=short_clips["song_a"], audio=folder.audio)
    settings = GenerateSettings(generators=["toy"], options={"toy": {"root": 55, "step_s": 0.5}})
    arrange = ArrangeSettings()

    made = make_candidates(song, folder, settings, arrange)

    assert made.skipped == {}
    assert {(c.style, c.seed) for c in made.candidates} == set(arrange.variants())
    assert all(c.generator == "toy" and c.id.startswith("toy-") and c.midi.exists() and c.note_count > 0
               for c in made.candidates)
    transcribed = read_midi(folder.transcription("toy"))
    assert 10 <= len(transcribed) <= 20  # one note per loud half second of a 10 s band recording
    assert {n.pitch for n in transcribed} <= {55, 59, 62, 67}  # the options reached the third party's model


def test_doctor_lists_a_third_party_generator(toy, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"generate": {"generators": ["basic-pitch", "toy"], "options": {"toy": {"root": 50}}}}))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(toy), os.environ.get("PYTHONPATH")])))
    shown = subprocess.run([COVERMILL, "doctor", "--config", str(config)], env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in shown.stderr, shown.stderr
    lines = [line for line in shown.stdout.splitlines() if line.startswith(("[ok  ] generator", "[MISS] generator"))]
    assert [line.split(":")[0] for line in lines] == [
        "[ok  ] generator basic-pitch (covermill 0.1.0)", "[ok  ] generator pop2piano (covermill 0.1.0)",
        "[ok  ] generator toy (toy-transcriber 1.2)", "[ok  ] generator transkun (covermill 0.1.0)"]
    assert "[ok  ] generator toy (toy-transcriber 1.2): no weights needed; arpeggio from 50; enabled" in lines


def test_a_name_registered_twice_is_resolved_the_same_way_and_said(toy, site):
    # another package claims basic-pitch: covermill's own stays; two others claim `toy`: the first by name wins
    write_distribution(site, "zz-impostor", "0.1", {"basic-pitch": "zz_impostor", "toy": "zz_impostor"},
                       {"zz_impostor": TOY_MODULE})
    write_distribution(site, "aa-toys", "3.0", {"toy": "aa_toys"}, {"aa_toys": TOY_MODULE})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entries = registry.registrations()
    assert entries["basic-pitch"].distribution.startswith("covermill ")
    assert entries["basic-pitch"].module == BUILT_IN["basic-pitch"]
    assert entries["basic-pitch"].shadowed == ("zz-impostor 0.1 (zz_impostor)",)
    assert (entries["toy"].distribution, entries["toy"].module) == ("aa-toys 3.0", "aa_toys")
    assert set(entries["toy"].shadowed) == {"toy-transcriber 1.2 (toy_transcriber)", "zz-impostor 0.1 (zz_impostor)"}
    messages = sorted(str(w.message) for w in caught if issubclass(w.category, registry.DuplicateGenerator))
    assert len(messages) == 2
    assert messages[0].startswith("generator 'basic-pitch' is registered by covermill 0.1.0 (covermill.models.basic_pitch) "
                                  "and by zz-impostor 0.1 (zz_impostor); using covermill 0.1.0's")
    assert messages[1].startswith("generator 'toy' is registered by aa-toys 3.0 (aa_toys) and by ")


def test_a_broken_generator_is_one_sentence_naming_its_distribution(site):
    write_distribution(site, "half-done", "0.0.1", {"half": "half_done", "gone": "no_such_module"},
                       {"half_done": "def load(options):\n    return None\n"})
    assert {"half", "gone"} <= set(registry.names())  # listing does not import them
    with pytest.raises(BrokenGenerator, match=r"generator 'half' from half-done 0.0.1: half_done needs an `Options` model"):
        registry.generator_module("half")
    with pytest.raises(ValidationError, match=r"'gone' from half-done 0.0.1: cannot import no_such_module \(ModuleNotFoundError"):
        GenerateSettings(generators=["gone"])
    with pytest.raises(ValidationError) as caught:
        GenerateSettings(options={"half": {}})
    assert caught.value.errors()[0]["loc"] == ("options", "half")
