"""Where a model's weights come from: a local folder, or the Hugging Face cache of a hub id.

Nothing here downloads: from_pretrained does, unless HF_HUB_OFFLINE is set. When the weights are
not there the user gets one sentence with the command that fetches them on a connected machine.
"""

from __future__ import annotations

import os
from pathlib import Path


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, also when it was set after the import."""
    import huggingface_hub.constants

    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    return flag or bool(huggingface_hub.constants.HF_HUB_OFFLINE)


def looks_like_path(model: str) -> bool:
    return Path(model).expanduser().is_absolute() or model.startswith((".", "~"))


def source(model: str) -> str:
    """What to hand from_pretrained: an existing folder's path, else the hub id as given."""
    local = Path(model).expanduser()
    return str(local) if local.exists() else model


def find_files(model: str, marker: str, revision: str | None = None) -> Path | None:
    """The folder holding `marker` (config.json, model_index.json) for a local folder or a hub id
    in the Hugging Face cache, without loading anything; None when it is not on this machine."""
    from huggingface_hub import try_to_load_from_cache

    local = Path(model).expanduser()
    if local.is_dir():
        return local if (local / marker).exists() else None
    if looks_like_path(model):
        return None
    try:
        cached = try_to_load_from_cache(model, marker, revision=revision)
    except ValueError:  # not a valid repo id
        return None
    return Path(cached).parent if isinstance(cached, str) else None


def missing_message(what: str, model: str, default_id: str, folder: str, setting: str,
                    offline: bool | None = None) -> str:
    """One sentence: where the weights were looked for and how to bring them here.

    `offline` says why they were not downloaded (None: a download was not tried).
    """
    if looks_like_path(model):
        return (f"there is no {what} in {model}: on a connected machine run "
                f"`hf download {default_id} --local-dir {folder}` and copy that folder to {model}.")
    reason = "" if offline is None else " and HF_HUB_OFFLINE is set" if offline else " and it could not be downloaded"
    return (f"the {what} {model!r} is not in this machine's Hugging Face cache{reason}: on a connected machine "
            f"run `hf download {model} --local-dir {folder}`, copy that folder here and set {setting} to its path.")
