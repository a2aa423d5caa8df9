"""config.yaml: the shipped file is valid, and every mistake is one sentence naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from covermill.flows.config import CovermillConfig, load_config, with_overrides
from covermill.tasks.core.errors import CovermillError

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def test_the_shipped_config_is_valid_and_names_only_settings_that_exist():
    """It loads: valid values, and no key the settings models lack (an unknown one is an error).
    Its values are the user's to edit, so no test compares with them: the models' defaults are
    the oracle, and conftest runs every test away from ./config.yaml."""
    assert isinstance(load_config(REPO_CONFIG), CovermillConfig)


def test_a_partial_config_overrides_only_what_it_names(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("render:\n  program: 4\ngenerate:\n  generators: [basic-pitch, transkun]\n")
    config = load_config(path)
    assert config.render.program == 4 and config.generate.generators == ["basic-pitch", "transkun"]
    assert config.rank == CovermillConfig().rank


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rendr:\n  program: 4\n", r"unknown setting 'rendr'; check its spelling \(known here: arrange, download, gallery, generate"),
        ("rank:\n  max_frame: 10\n", r"unknown setting 'rank.max_frame'.*max_frames"),
        ("render:\n  program: piano\n", r"setting 'render.program' is invalid"),
        ("download:\n  max_duration_s: -3\n", r"setting 'download.max_duration_s' is invalid: Input should be greater than 0"),
        ("generate:\n  generators: [pop3piano]\n",
         r"setting 'generate.generators' is invalid: unknown generator 'pop3piano'; known generators: basic-pitch"),
        # a generator's options are checked by its own pydantic model, and read like every other setting
        ("generate:\n  options:\n    pop2piano: {temperature: 0}\n",
         r"setting 'generate.options.pop2piano.temperature' is invalid: Input should be greater than 0; fix it in the file\.$"),
        ("generate:\n  options:\n    pop2piano: {temprature: 0.9}\n",
         r"unknown setting 'generate.options.pop2piano.temprature'; check its spelling "
         r"\(known here: arrangers, batch_size, device, dtype, .*temperature, threads, top_k, top_p\)\.$"),
        ("generate:\n  options:\n    pop2piano: {arrangers: '0,22'}\n",
         r"setting 'generate.options.pop2piano.arrangers' is invalid: arrangers are numbers from 1 to 21 \(or 'all'\), "
         r"got \[0, 22\]"),
        ("generate:\n  options:\n    pop2piano: {sampling: true, seeds: []}\n",
         r"setting 'generate.options.pop2piano' is invalid: seeds must list at least one seed when sampling"),
        ("generate:\n  options:\n    transkun: {device: tpu}\n",
         r"setting 'generate.options.transkun.device' is invalid: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"),
        ("generate:\n  options:\n    basic-pitch: {onset_threshold: 1.5}\n",
         r"setting 'generate.options.basic-pitch.onset_threshold' is invalid: Input should be less than 1;"),
        ("generate:\n  options:\n    basic-pitch: 0.5\n",
         r"setting 'generate.options.basic-pitch' is invalid: Input should be a valid dictionary or instance of "
         r"BasicPitchOptions"),
        ("generate:\n  options:\n    basic_pitch: {}\n",
         r"setting 'generate.options.basic_pitch' is invalid: unknown generator 'basic_pitch'; known generators: basic-pitch"),
        ("thumbnail:\n  stable_diffusion: {stepz: 4}\n",
         r"unknown setting 'thumbnail.stable_diffusion.stepz'; check its spelling "
         r"\(known here: batch_size, .*steps, threads, width\)"),
        ("thumbnail:\n  stable_diffusion: {width: 100}\n",
         r"setting 'thumbnail.stable_diffusion.width' is invalid: must be a multiple of 8 from 64 up, got 100"),
        ("arrange:\n  styles:\n    odd: [{step: shuffle}]\n", r"arrange.styles.*shuffle"),
        ("render: [\n", r"line \d+: not valid YAML"),
        ("render:\n  gain: 0.2\n  program: 0\n  gain: 0.9\n", r"line 4: 'gain' is set twice in the same section; keep one of them"),
        ("render: {}\nrank: {}\nrender: {gain: 0.9}\n", r"line 3: 'render' is set twice"),
        ("- just\n- a list\n", r"expected a mapping of sections"),
    ],
)
def test_mistakes_are_one_sentence(tmp_path, text, expected):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(CovermillError, match=expected) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message


def test_anchors_and_merge_keys_still_load(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("render: &r {gain: 0.3}\nvideo:\n  <<: {fps: 4.0}\n  <<: {crf: 22}\n")
    config = load_config(path)
    assert (config.render.gain, config.video.fps, config.video.crf) == (0.3, 4.0, 22)


def test_generator_options_survive_the_command_lines_round_trip(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("generate:\n  generators: [pop2piano]\n  options:\n    pop2piano: {temperature: 0.7, arrangers: '3,1'}\n")
    config = load_config(path)
    options = config.generate.options_for("pop2piano")
    assert (options.temperature, options.arrangers, options.seeds) == (0.7, [1, 3], [0, 1])
    changed = with_overrides(config, arrangers="all", seeds="5")
    options = changed.generate.options_for("pop2piano")
    assert (options.temperature, options.arrangers, options.seeds) == (0.7, list(range(1, 22)), [5])
    with pytest.raises(CovermillError, match=r"^command line: setting 'generate.options.pop2piano.arrangers' is invalid"):
        with_overrides(config, arrangers="0")


def test_a_missing_config_file(tmp_path):
    with pytest.raises(CovermillError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
