"""Which torch device a model runs on: `auto` means CUDA when present, else the CPU."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

# What every accelerator call runs inside: a callable giving a context manager (in a flow, one
# slot of Prefect's `gpu` concurrency limit; contextlib.nullcontext outside one).
Hold = Callable[[], AbstractContextManager[Any]]


def resolve_device(setting: str = "auto") -> str:
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {setting!r} was asked for but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    return setting


def usable_cores() -> int:
    """Cores this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_dtype(device: str, setting: str) -> str:
    """Half precision only where it pays and works: a CPU always computes in float32."""
    return setting if device.startswith("cuda") else "float32"
