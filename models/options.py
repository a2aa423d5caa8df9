"""The one base of every model's options, so a bad option reads like any other config error.

Options are pydantic models like the stages' settings: unknown keys are refused (a typo is not
silently ignored), defaults are validated too, and instances are frozen because a loaded model is
cached per set of options. config.yaml nests them (generate.options.<generator>,
thumbnail.stable_diffusion), so pydantic's error carries the option's full path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict

DTYPES = ("float32", "float16", "bfloat16")


class ModelOptions(BaseModel):
    """Base of a model's options (a generator module's `Options`, Stable Diffusion's)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @classmethod
    def coerce(cls, options: ModelOptions | Mapping[str, Any] | None = None) -> Self:
        """`options` when already validated, else validated from a mapping (None: the defaults);
        a bad option (or a value that is no mapping) raises pydantic's ValidationError."""
        if isinstance(options, cls):
            return options
        if isinstance(options, ModelOptions):
            options = options.model_dump()
        elif isinstance(options, Mapping):
            options = dict(options)
        return cls.model_validate({} if options is None else options)


def _device(value: str) -> str:
    if not (value in ("auto", "cpu", "cuda") or value.startswith("cuda:")):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {value!r}")
    return value


# Checked when config is read; whether CUDA is really there is models/device.py's call at load time.
Device = Annotated[str, AfterValidator(_device)]
Dtype = Literal[DTYPES]  # type: ignore[valid-type]
