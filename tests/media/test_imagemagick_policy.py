"""covermill's ImageMagick calls run under its own policy: JPEG and PNG, nothing that reads local
files or runs scripts (Debian's own policy allows `text:`, MSL, MVG and SVG)."""

from __future__ import annotations

import os
import subprocess
import sys

# Each case reads a file through a coder a hostile title or picture could name; prints what happened.
PROBE = """
import sys
if sys.argv[1] == "covermill":
    import covermill.tasks.media  # noqa: F401 (sets the policy before Wand loads)
from wand.image import Image
for name in sys.argv[2:]:
    try:
        with Image(filename=name) as image:
            print(name, "read", image.width)
    except Exception as error:  # Wand's PolicyError, CoderError, ...
        print(name, "refused", type(error).__name__)
"""


def run_probe(mode: str, *names: str) -> dict[str, str]:
    # without the variable this test process inherited when it imported covermill's media package
    env = {k: v for k, v in os.environ.items() if k != "MAGICK_CONFIGURE_PATH"}
    done = subprocess.run([sys.executable, "-c", PROBE, mode, *names], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()}


def test_coders_that_read_local_files_or_run_scripts_are_refused(tmp_path):
    script = tmp_path / "x.msl"
    script.write_text('<?xml version="1.0"?><image><read filename="text:/etc/hostname"/></image>')
    drawing = vector_drawings(tmp_path)["mvg"]
    svg = vector_drawings(tmp_path)["svg"]
    picture = tmp_path / "ok.png"
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "color=c=red:s=32x16", "-frames:v", "1", str(picture)], check=True)
    names = ["text:/etc/hostname", f"msl:{script}", f"mvg:{drawing}", f"svg:{svg}", "@/etc/hostname"]
    found = run_probe("covermill", *names, str(picture))
    assert {name: found[name] for name in names} == dict.fromkeys(names, "refused")
    assert found[str(picture)] == "read"  # what covermill needs still works


def vector_drawings(folder) -> dict[str, object]:
    """A red square as an MVG script and as an SVG file."""
    mvg, svg = folder / "x.mvg", folder / "x.svg"
    mvg.write_text("viewbox 0 0 10 10\nfill red\nrectangle 0,0 5,5\n")
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="5" height="5" fill="red"/></svg>')
    return {"mvg": mvg, "svg": svg}


def test_without_covermills_policy_the_system_would_run_the_scripts(tmp_path):
    """The control: the system's policy alone runs MVG and SVG, so the refusals above are covermill's
    policy's doing. (ImageMagick 6 here aborts on a `text:` read, so that one is not tried.)"""
    drawings = vector_drawings(tmp_path)
    found = run_probe("plain", f"mvg:{drawings['mvg']}", f"svg:{drawings['svg']}")
    assert set(found.values()) == {"read"}
