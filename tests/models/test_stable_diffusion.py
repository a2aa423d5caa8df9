"""Stable Diffusion thumbnails on tiny randomly initialised pipelines loaded through the real
from_pretrained and pipeline code: seeds, safety re-rolls, the fallback art and its reasons."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from wand.image import Image

from covermill.models import stable_diffusion
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.layout import SongFolder
from covermill.tasks.core.records import Song
from covermill.tasks.media.art import make_background
from covermill.tasks.media.picture import fill
from covermill.tasks.media.thumbnail import ThumbnailSettings, make_song_thumbnail, make_thumbnail

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from random_stable_diffusion import save_random_stable_diffusion  # noqa: E402

SMALL = {"steps": 2, "width": 112, "height": 64}
CORNER = (slice(0, 100), slice(1000, 1280))  # top right: the lettering and the label never reach it


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> Path:
    return save_random_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny")


@pytest.fixture(scope="session")
def flagging_pipeline(tmp_path_factory) -> Path:
    return save_random_stable_diffusion(tmp_path_factory.mktemp("sd") / "flags", flag_everything=True)


def song(title: str = "Sakura", artist: str = "Ikimono-gakari", genre: str = "J-pop") -> Song:
    return Song(id="5d41402abc4b2a76", source="/music/x.ogg", source_id="file:x", title=title, artist=artist,
                genre=genre, duration=25.0, original=Path("/music/x.ogg"), audio=Path("/music/x.wav"))


def settings_for(model: Path, **overrides) -> ThumbnailSettings:
    overrides = {"seeds": [0, 1, 2], **overrides}
    return ThumbnailSettings(generator="stable-diffusion", stable_diffusion={"model": str(model), **SMALL}, **overrides)


def jpeg_pixels(path: Path) -> np.ndarray:
    with Image(filename=str(path)) as image:
        assert image.size == (1280, 720)
        return np.array(image)[..., :3].astype(np.int16)


def corner(image: Image) -> np.ndarray:
    return np.array(image)[..., :3].astype(np.int16)[CORNER]


def test_each_seed_gives_its_own_image_in_any_batch(tiny_pipeline):
    options = {"model": str(tiny_pipeline), **SMALL}
    one_by_one = stable_diffusion.load(dict(options, batch_size=1))("a piano", "text", [4, 5], until_safe=False)
    together = stable_diffusion.load(dict(options, batch_size=2))("a piano", "text", [4, 5], until_safe=False)
    pixels = [np.asarray(d.image, dtype=np.int16) for d in one_by_one]
    assert [d.image.size for d in together] == [(112, 64), (112, 64)]
    assert all(np.abs(np.asarray(d.image, dtype=np.int16) - p).max() <= 1 for d, p in zip(together, pixels))
    assert np.abs(pixels[0] - pixels[1]).mean() > 5  # another seed, another picture


def test_flagged_seeds_are_rerolled_and_never_published(tiny_pipeline, tmp_path):
    settings = settings_for(tiny_pipeline, image_check="image_checks:flag_seeds_0_and_1")
    target = make_thumbnail(song(), tmp_path / "thumbnail.jpg", settings)

    art = json.loads((tmp_path / "thumbnail.json").read_text())
    assert art["art"] == "stable-diffusion" and art["seed"] == 2 and art["reason"] is None
    assert art["discarded"] == {"0": "test check refused seed 0", "1": "test check refused seed 1"}
    assert art["prompt"].startswith('album cover art for the piano piece "Sakura" by Ikimono-gakari, J-pop, ')
    assert art["negative_prompt"].startswith("text, letters")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thumbnail.jpg", "thumbnail.json"]  # no flagged image kept
    assert target.stat().st_size < 2_000_000

    drawn = {d.seed: d.image for d in stable_diffusion.load_cached(settings.stable_diffusion)("x", "y", [0, 1, 2], until_safe=False)}
    published = jpeg_pixels(target)[CORNER]
    with fill(drawn[2], 1280, 720) as picked, fill(drawn[0], 1280, 720) as refused:
        assert np.abs(published - corner(picked)).mean() < 6  # the picture under the title is seed 2's
        assert np.abs(published - corner(refused)).mean() > 10


def test_when_every_seed_is_flagged_the_procedural_art_is_used(flagging_pipeline, tiny_pipeline, tmp_path):
    # the pipeline's own safety checker (a tiny real one that flags everything)
    target = make_thumbnail(song(), tmp_path / "a.jpg", settings_for(flagging_pipeline))
    art = json.loads((tmp_path / "a.json").read_text())
    assert art["art"] == "procedural" and art["seed"] is None
    assert art["reason"] == "every seed (0, 1, 2) was flagged"
    assert set(art["discarded"].values()) == {"the pipeline's safety checker flagged it"}
    with make_background(song().id, 1280, 720) as background:
        assert np.abs(jpeg_pixels(target)[CORNER] - corner(background)).mean() < 6

    # a second check configured by the user
    make_thumbnail(song(), tmp_path / "b.jpg", settings_for(tiny_pipeline, image_check="image_checks:flag_every_seed"))
    assert json.loads((tmp_path / "b.json").read_text())["reason"] == "every seed (0, 1, 2) was flagged"


def test_a_missing_model_falls_back_with_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = ThumbnailSettings(generator="stable-diffusion", stable_diffusion={"model": "someone/no-such-model"})
    make_thumbnail(song(), tmp_path / "thumbnail.jpg", settings)
    reason = json.loads((tmp_path / "thumbnail.json").read_text())["reason"]
    assert reason.startswith("the Stable Diffusion model 'someone/no-such-model' is not in this machine's Hugging Face "
                             "cache and HF_HUB_OFFLINE is set: on a connected machine run `hf download someone/no-such-model")
    assert "\n" not in reason


def test_out_of_memory_halves_the_batch_and_keeps_the_images(tiny_pipeline, monkeypatch):
    painter = stable_diffusion.load({"model": str(tiny_pipeline), **SMALL, "batch_size": 4})
    expected = [np.asarray(d.image, dtype=np.int16) for d in painter("a piano", "text", [7, 8, 9, 10], until_safe=False)]
    painter.batch_size = 4
    real_forward = painter.pipeline.unet.forward

    def forward_with_little_memory(sample, *args, **kwargs):
        if sample.shape[0] > 2:  # classifier-free guidance doubles the batch: one image at a time fits
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real_forward(sample, *args, **kwargs)

    monkeypatch.setattr(painter.pipeline.unet, "forward", forward_with_little_memory)
    messages: list[str] = []
    drawn = painter("a piano", "text", [7, 8, 9, 10], progress=messages.append, until_safe=False)
    assert painter.batch_size == 1
    assert [m for m in messages if "out of memory" in m] == [
        "thumbnail: out of memory with 4 images per call; retrying with 2",
        "thumbnail: out of memory with 2 images per call; retrying with 1",
    ]
    assert all(np.abs(np.asarray(d.image, dtype=np.int16) - e).max() <= 1 for d, e in zip(drawn, expected))


def test_prompts_come_from_the_users_templates(tiny_pipeline, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "thumbnail_prompt.j2").write_text("watercolour of {{ song.title }} ({{ song.genre or 'music' }})\n")
    settings = settings_for(tiny_pipeline, templates_dir=templates, seeds=[3])
    make_thumbnail(song(title="{{ 7*7 }} @/etc/passwd", genre=""), tmp_path / "t.jpg", settings)
    art = json.loads((tmp_path / "t.json").read_text())
    assert art["prompt"] == "watercolour of {{ 7*7 }} @/etc/passwd (music)"  # the title stays data
    assert art["negative_prompt"].startswith("text, letters")  # the packaged one, not overridden


def test_bad_settings_are_one_sentence(tiny_pipeline, tmp_path):
    with pytest.raises(CovermillError, match=r"^thumbnail.image_check 'nowhere:check' names no importable function"):
        make_thumbnail(song(), tmp_path / "t.jpg", settings_for(tiny_pipeline, image_check="nowhere:check"))
    with pytest.raises(ValueError, match="must be a multiple of 8"):
        ThumbnailSettings(stable_diffusion={"width": 100})
    with pytest.raises(ValueError, match="must name a diffusers scheduler"):
        ThumbnailSettings(stable_diffusion={"scheduler": "Fastest"})


def test_a_configured_scheduler_replaces_the_models_own(tiny_pipeline, tmp_path):
    painter = stable_diffusion.load({"model": str(tiny_pipeline), **SMALL, "scheduler": "DPMSolverMultistepScheduler"})
    assert type(painter.pipeline.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert painter("a piano", "", [0])[0].image.size == (112, 64)


def test_doctor_reports_the_stable_diffusion_model(tiny_pipeline, tmp_path):
    from typer.testing import CliRunner

    from covermill.flows.cli import app

    config = tmp_path / "config.yaml"
    config.write_text(json.dumps({"thumbnail": {"generator": "stable-diffusion", "stable_diffusion": {"model": str(tmp_path / "none")}}}))
    missing = CliRunner().invoke(app, ["doctor", "--config", str(config)])
    assert "[MISS] thumbnail Stable Diffusion: diffusers 0.42.1; model" in missing.stdout
    assert "fix: there is no Stable Diffusion model in" in missing.stdout
    config.write_text(json.dumps({"thumbnail": {"generator": "stable-diffusion", "stable_diffusion": {"model": str(tiny_pipeline)}}}))
    found = CliRunner().invoke(app, ["doctor", "--config", str(config)])
    assert f"[ok  ] thumbnail Stable Diffusion: diffusers 0.42.1; model in {tiny_pipeline} (enabled)" in found.stdout


@pytest.mark.server
@pytest.mark.usefixtures("prefect_server")
def test_the_task_holds_the_gpu_slot(tiny_pipeline, tmp_path):
    from prefect.client.orchestration import get_client

    from covermill.tasks.core.gpu_slot import GpuSettings

    make_song_thumbnail(song(), tmp_path, settings_for(tiny_pipeline, seeds=[1]), GpuSettings(limit="gpu-test-thumbnail"))
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name("gpu-test-thumbnail")
    assert limit.limit == 1 and limit.active_slots == 0  # created on first use, given back after
    assert json.loads(SongFolder(tmp_path, song().id).thumbnail_info.read_text())["seed"] == 1
