"""Which torch device a model runs on: `auto` means CUDA when present, else the CPU."""

from __future__ import annotations


def resolve_device(setting: str = "auto") -> str:
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {setting!r} was asked for but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    return setting
