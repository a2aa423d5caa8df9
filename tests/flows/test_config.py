"""config.yaml: the shipped file is the defaults, and every mistake is one sentence naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from covermill.flows.config import CovermillConfig, load_config
from covermill.tasks.core.errors import CovermillError

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


def test_the_shipped_config_documents_the_defaults():
    assert load_config(REPO_CONFIG) == CovermillConfig()


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
        ("generate:\n  generators: [pop3piano]\n", r"setting 'generate' is invalid: unknown generator 'pop3piano'; known generators: basic-pitch"),
        ("arrange:\n  styles:\n    odd: [{step: shuffle}]\n", r"arrange.styles.*shuffle"),
        ("render: [\n", r"line \d+: not valid YAML"),
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


def test_a_missing_config_file(tmp_path):
    with pytest.raises(CovermillError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
