"""ImageMagick (through Wand) under covermill's own policy: only the coders covermill uses.

Titles and pictures come from the internet. ImageMagick's coders read far more than images (MSL
and MVG scripts, `text:` and `@file` reads of local files, URLs, PostScript through Ghostscript),
and a system's policy.xml may allow them. covermill's policy (imagemagick-policy/policy.xml: JPEG
and PNG only, no delegates, no indirect reads, bounded sizes) goes first on MAGICK_CONFIGURE_PATH.
ImageMagick reads that variable when libMagickWand loads, at Wand's first import; so the media
package's __init__ calls `use_covermill_policy()` before any of its modules imports Wand.
"""

from __future__ import annotations

import os
from pathlib import Path

POLICY_FOLDER = Path(__file__).with_name("imagemagick-policy")


def use_covermill_policy() -> None:
    """Put covermill's policy folder first on MAGICK_CONFIGURE_PATH (once; other entries kept after it)."""
    others = [p for p in os.environ.get("MAGICK_CONFIGURE_PATH", "").split(os.pathsep) if p and p != str(POLICY_FOLDER)]
    os.environ["MAGICK_CONFIGURE_PATH"] = os.pathsep.join([str(POLICY_FOLDER), *others])
