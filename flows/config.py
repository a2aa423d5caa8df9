"""The root config: every stage's settings model, composed and read from config.yaml.

Each stage owns its settings next to its code (tasks/<stage>.py); this module only composes them
and turns a bad config file into one sentence that names the setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from covermill.flows.nightly_settings import NightlySettings
from covermill.flows.run_form import RunFormSettings
from covermill.tasks.arrange.styles import ArrangeSettings
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.gpu_slot import GpuSettings
from covermill.tasks.core.settings import Settings
from covermill.tasks.cover.download import DownloadSettings
from covermill.tasks.cover.generate import GenerateSettings
from covermill.tasks.cover.render import RenderSettings
from covermill.tasks.media.gallery import GallerySettings
from covermill.tasks.media.metadata import MetadataSettings
from covermill.tasks.media.score.stage import ScoreSettings
from covermill.tasks.media.thumbnail import ThumbnailSettings
from covermill.tasks.media.video import VideoSettings
from covermill.tasks.publish.upload import UploadSettings
from covermill.tasks.rank.identity import IdentitySettings
from covermill.tasks.rank.ranking import RankSettings

DEFAULT_CONFIG = Path("config.yaml")


class CovermillConfig(Settings):
    download: DownloadSettings = DownloadSettings()
    generate: GenerateSettings = GenerateSettings()
    arrange: ArrangeSettings = ArrangeSettings()
    render: RenderSettings = RenderSettings()
    rank: RankSettings = RankSettings()
    identity: IdentitySettings = IdentitySettings()
    thumbnail: ThumbnailSettings = ThumbnailSettings()
    video: VideoSettings = VideoSettings()
    score: ScoreSettings = ScoreSettings()
    metadata: MetadataSettings = MetadataSettings()
    gpu: GpuSettings = GpuSettings()
    upload: UploadSettings = UploadSettings()
    nightly: NightlySettings = NightlySettings()
    gallery: GallerySettings = GallerySettings()
    run_form: RunFormSettings = RunFormSettings()


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The settings that exist where an unknown one was found, to suggest the right spelling.

    Walks the models along `loc`: a field whose type is a model (a stage's settings, Stable
    Diffusion's options) is entered directly; a mapping of models keyed by name (a generator's
    options under generate.options.<name>) through the owner's `nested_model(field, key)`.
    """
    parts = [str(part) for part in loc[:-1]]
    while parts:
        part = parts.pop(0)
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        nested = getattr(model, "nested_model", None)
        inner = nested(part, parts.pop(0)) if field is not None and nested is not None and parts else None
        if inner is None:
            return []
        model = inner
    return sorted(model.model_fields)


def explain(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    loc = tuple(first.get("loc", ()))
    where = ".".join(str(p) for p in loc) or "(top level)"
    if first.get("type") == "extra_forbidden":
        known = _known_keys(CovermillConfig, loc)
        hint = f" (known here: {', '.join(known)})" if known else ""
        return f"{source}: unknown setting '{where}'; check its spelling{hint}."
    message = str(first.get("msg", "bad value")).removeprefix("Value error, ")
    fix = "fix the option" if source == "command line" else "fix it in the file"
    return f"{source}: setting '{where}' is invalid: {message}; {fix}."


def config_from_dict(data: dict[str, Any], source: str = "config") -> CovermillConfig:
    try:
        return CovermillConfig.model_validate(data)
    except ValidationError as exc:
        raise CovermillError(explain(exc, source)) from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int):
        super().__init__(f"duplicate key {key!r}")
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error: PyYAML keeps the last one
    silently, so a setting written twice would quietly override the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may repeat
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise _DuplicateKey(key, key_node.start_mark.line + 1)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: Path | None = None) -> CovermillConfig:
    """Read `path` (or ./config.yaml when present; built-in defaults otherwise)."""
    if path is None:
        if not DEFAULT_CONFIG.exists():
            return CovermillConfig()
        path = DEFAULT_CONFIG
    path = Path(path)
    if not path.is_file():
        raise CovermillError(f"{path}: config file not found; give an existing file with --config.")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except _DuplicateKey as exc:
        raise CovermillError(f"{path} line {exc.line}: {exc.key!r} is set twice in the same section; keep one of them.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise CovermillError(f"{path}{where}: not valid YAML ({problem}); fix the indentation or quoting there.") from None
    if not isinstance(data, dict):
        raise CovermillError(f"{path}: expected a mapping of sections (download:, generate:, ...), found {type(data).__name__}.")
    return config_from_dict(data, str(path))


def _number_list(text: str, what: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CovermillError(f"{what} must be numbers separated by commas, like 0,1; got {text!r}.") from None


def with_overrides(config: CovermillConfig, generators: str | None = None, arrangers: str | None = None,
                   seeds: str | None = None, video_style: str | None = None) -> CovermillConfig:
    """The config with the command line's choices applied (comma-separated, as typed), checked like
    the file: `generators` replaces generate.generators; `arrangers` picks Pop2Piano's composers
    (`all` or 1,3,20); `seeds` sets the sampling seeds of Pop2Piano and of the random styles;
    `video_style` sets video.style."""
    data = config.model_dump(mode="json")
    if video_style is not None:
        data["video"]["style"] = video_style
    if generators is not None:
        data["generate"]["generators"] = [name.strip() for name in generators.split(",") if name.strip()]
    if arrangers is not None or seeds is not None:
        options = data["generate"]["options"].setdefault("pop2piano", {})
        if arrangers is not None:
            options["arrangers"] = arrangers
        if seeds is not None:
            options["seeds"] = data["arrange"]["seeds"] = _number_list(seeds, "--seeds")
    return config_from_dict(data, "command line")
