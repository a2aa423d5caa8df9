"""What would fail every song is one sentence before the first: the soundfont, an enabled generator's model."""

from __future__ import annotations

import huggingface_hub.constants
import pytest

from covermill.flows.config import config_from_dict
from covermill.flows.preflight import preflight
from covermill.tasks.core.errors import CovermillError


def with_pop2piano(model: str):
    return config_from_dict({"generate": {"generators": ["basic-pitch", "pop2piano"], "options": {"pop2piano": {"model": model}}}})


def test_the_defaults_pass():
    preflight(config_from_dict({}))


def test_a_missing_soundfont(tmp_path):
    with pytest.raises(CovermillError, match=r"gone\.sf2: soundfont not found; install fluid-soundfont-gm or set render\.soundfont"):
        preflight(config_from_dict({"render": {"soundfont": str(tmp_path / "gone.sf2")}}))


def test_a_missing_model_folder(tmp_path):
    with pytest.raises(CovermillError, match=rf"^generator pop2piano: there is no Pop2Piano model in {tmp_path}/absent: "):
        preflight(with_pop2piano(str(tmp_path / "absent")))


def test_a_hub_id_not_cached_is_left_to_download_unless_offline(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    config = with_pop2piano("someone/no-such-pop2piano")
    preflight(config)  # from_pretrained fetches it when the song gets there
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CovermillError, match=r"^generator pop2piano: the Pop2Piano model 'someone/no-such-pop2piano' is not in this "
                                             r"machine's Hugging Face cache"):
        preflight(config)
