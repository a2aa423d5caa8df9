"""The command line shared by the random model builders: FOLDER [--size tiny|real]."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def run(save: Callable[[Path, str], Path], description: str) -> None:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size", choices=["tiny", "real"], default="tiny")
    args = parser.parse_args()
    print(save(args.folder, args.size))
