"""`covermill doctor`: every external piece checked (flows/doctor.py), and the gpu slot reset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from covermill.flows.cli.common import app, load_settings, one_sentence_on_error, say_error


@app.command(
    help=(
        "Check every external piece covermill needs (FFmpeg, FluidSynth and the soundfont, "
        "ImageMagick, essentia, the generators installed in the covermill.generators entry-point "
        "group and their models, torch, Prefect) and print the fix for each one missing. Exit "
        "code 1 if anything required is missing.\n\n"
        "Examples:\n\n"
        "  covermill doctor --config config.yaml\n\n"
        "  covermill doctor --reset-gpu-slot     # a killed run left the gpu slot held"
    )
)
def doctor(
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Settings file whose paths and devices to check.")] = None,
    reset_gpu_slot: Annotated[bool, typer.Option("--reset-gpu-slot", help="Free every slot of the gpu concurrency limit (after a killed run), then check.")] = False,
) -> None:
    from covermill.flows.doctor import run_checks

    settings = load_settings(config)
    if reset_gpu_slot:
        from prefect.settings import PREFECT_API_URL

        from covermill.tasks.core.gpu_slot import reset_slots

        if settings.gpu.limit is None or not PREFECT_API_URL.value():
            say_error("gpu.limit is null: there is no slot to reset." if settings.gpu.limit is None else
                      "no Prefect server configured (PREFECT_API_URL): each run's temporary server forgets its slots; nothing to reset.")
            raise typer.Exit(2)
        with one_sentence_on_error():
            print(f"freed {reset_slots(settings.gpu.limit)} slot(s) of {settings.gpu.limit!r}")
    ok = True
    for check in run_checks(settings):
        mark = "ok  " if check.ok else "MISS"
        print(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok:
            ok = False
            print(f"       fix: {check.fix}")
    if not ok:
        raise typer.Exit(1)
