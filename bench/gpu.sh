#!/usr/bin/env bash
# The Pop2Piano and Stable Diffusion benches on a GPU machine that has only Python and torch, in
# one command, writing one JSON of figures (the recipe is ../shared/gpu-notes.md's).
#
#   bench/gpu.sh [SONG] [--device cuda] [--seconds 240] [--out out/bench/gpu.json] [--cold] [--tiny]
#
# On a CPU machine with network first: `make bench-gpu-wheels` (cp312 wheels into .whl/, and the
# 4-minute song into .cache/bench/); carry .whl/ and .cache/bench/ beside the repository. Only
# when the imports fail are the wheels installed, into $GPU_BENCH_SITE (default
# /tmp/covermill-gpu-site) rather than the machine's Python, and peft uninstalled (its import
# breaks diffusers beside transformers 5.23). covermill comes from this checkout, on PYTHONPATH.
#
#   SONG        an audio file, cut to --seconds (default: .cache/bench/planetblupi-music004-240s.ogg,
#               else planetblupi's music004.ogg); ffmpeg may be absent: soundfile cuts it then
#   --cold      also run the Pop2Piano bench without the model's warm-up (what the warm-up saves)
#   --tiny      tiny random models, few tokens and steps: the smoke test on a CPU
#               (tests/bench/test_gpu_bench.py runs `bench/gpu.sh --device cpu --tiny --seconds 10`)
#   --out FILE  or $GPU_BENCH_OUT; PYTHON picks the interpreter (default: .venv's, else python3)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEVICE=cuda
CUT_SECONDS=240
OUT=${GPU_BENCH_OUT:-out/bench/gpu.json}
WHEELS=${GPU_BENCH_WHEELS:-$ROOT/.whl}
SITE=${GPU_BENCH_SITE:-/tmp/covermill-gpu-site}
TINY=0
COLD=0
SONG=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --seconds) CUT_SECONDS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --cold) COLD=1; shift ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu.sh: unknown option $1 (see bench/gpu.sh --help)" >&2; exit 2 ;;
    *) SONG=$1; shift ;;
  esac
done
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
if [ -z "$SONG" ]; then
  for candidate in "$ROOT/.cache/bench/planetblupi-music004-240s.ogg" /usr/share/planetblupi/music/music004.ogg; do
    if [ -f "$candidate" ]; then SONG=$candidate; break; fi
  done
fi
if [ -z "$SONG" ] || [ ! -f "$SONG" ]; then
  echo "gpu.sh: no song to bench (${SONG:-none given}); give an audio file, or run \`make bench-gpu-wheels\`, which cuts one into .cache/bench/" >&2
  exit 2
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# covermill as pyproject.toml maps it (covermill.flows = flows/ ...), from this checkout
mkdir -p "$WORK/pkg/covermill"
for part in flows tasks models templates; do ln -s "$ROOT/$part" "$WORK/pkg/covermill/$part"; done
export PYTHONPATH="$WORK/pkg${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

# What the two benches import; prints the modules that fail, one a line (and nothing else: what the
# imports print themselves, such as pyfluidsynth's "'fluidsynth' was found" under $CI, is dropped).
missing_modules() {
  "$PYTHON" - <<'EOF'
import contextlib, importlib, io
failed = []
for name in ("torch", "transformers", "diffusers", "pydantic", "essentia", "soundfile", "soxr", "librosa",
             "pretty_midi", "covermill.models.pop2piano", "covermill.models.stable_diffusion"):
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name} ({type(exc).__name__}: {exc})")
if failed:
    print("\n".join(failed))
EOF
}

missing=$(missing_modules)
if [ -n "$missing" ] && [ -d "$SITE" ]; then  # installed by an earlier run on this machine
  export PYTHONPATH="$SITE:$PYTHONPATH"
  missing=$(missing_modules)
fi
if [ -n "$missing" ]; then
  if ! compgen -G "$WHEELS/*.whl" >/dev/null; then
    echo "gpu.sh: cannot import $(echo "$missing" | head -1); on a machine with network run \`make bench-gpu-wheels\` and carry .whl/ beside the repository" >&2
    exit 2
  fi
  echo "installing $(ls "$WHEELS"/*.whl | wc -l) carried wheels into $SITE" >&2
  "$PYTHON" -m pip install -q --no-index --no-deps --upgrade --target "$SITE" "$WHEELS"/*.whl
  if "$PYTHON" -c "import peft" 2>/dev/null; then
    "$PYTHON" -m pip uninstall -y -q peft
  fi
  [[ ":$PYTHONPATH:" == *":$SITE:"* ]] || export PYTHONPATH="$SITE:$PYTHONPATH"
  missing=$(missing_modules)
  if [ -n "$missing" ]; then
    echo "gpu.sh: still cannot import $(echo "$missing" | head -1) after installing the wheels in $WHEELS" >&2
    exit 2
  fi
fi

GENERATE=(--device "$DEVICE" --dtype bfloat16 --arrangers all --seeds 0,1 --seconds "$CUT_SECONDS")
THUMBNAIL=(--device "$DEVICE" --dtype float16 --images 4)
if [ "$TINY" = 1 ]; then
  GENERATE+=(--size tiny --max-new-tokens 16)
  THUMBNAIL+=(--size tiny --steps 2 --width 64 --height 64 --images 1)
fi

# Each bench runs whatever the other did: one failing must not cost the other's figures.
failed=()
run_bench() {
  local name=$1
  shift
  echo "== $name: $*" >&2
  if ! "$PYTHON" "$@"; then failed+=("$name"); fi
}
run_bench pop2piano "$ROOT/bench/generate.py" "$SONG" "${GENERATE[@]}" --songs 2 --json "$WORK/pop2piano.json"
if [ "$COLD" = 1 ]; then
  run_bench pop2piano_cold "$ROOT/bench/generate.py" "$SONG" "${GENERATE[@]}" --songs 1 --no-warm-up --json "$WORK/pop2piano_cold.json"
fi
run_bench stable_diffusion "$ROOT/bench/thumbnail.py" "${THUMBNAIL[@]}" --json "$WORK/stable_diffusion.json"

"$PYTHON" - "$WORK" "$OUT" "$SONG" "${failed[@]}" <<'EOF'
import json
import platform
import sys
from pathlib import Path

import torch
import transformers

work, out, song, failed = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4:]
figures = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                       "transformers": transformers.__version__,
                       "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
           "song": Path(song).name, "failed": failed}
for name in ("pop2piano", "pop2piano_cold", "stable_diffusion"):
    if (work / f"{name}.json").exists():
        figures[name] = json.loads((work / f"{name}.json").read_text())
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(json.dumps(figures, indent=2))

print(f"\n{out}: {figures['machine']['gpu'] or 'no GPU'}, torch {torch.__version__}")
p2p = figures.get("pop2piano")
if p2p:
    first, following = p2p["first"], p2p["next"]

    def features(song):
        return f"features {song['features_s']} s" + (" waited for, prefetched" if song["features_prefetched"] else "")

    print(f"pop2piano, {p2p['covers']} covers of {p2p['song_seconds']:.0f} s ({p2p['sequences']} sequences):")
    print(f"  first song {first['total_s']} s (load and warm-up {first['load_s']} s, of which warm-up {first['warmup_s']} s; "
          f"{features(first)}, generate {first['generate_s']} s in {first['calls']} calls, decode {first['decode_s']} s)")
    print(f"  next song  {following['total_s']} s ({features(following)}, generate {following['generate_s']} s, "
          f"decode {following['decode_s']} s); peak GPU {following['peak_gpu_mb']} MB")
cold = figures.get("pop2piano_cold")
if cold:
    print(f"  first song without the warm-up {cold['first']['total_s']} s (generate {cold['first']['generate_s']} s)")
sd = figures.get("stable_diffusion")
if sd:
    print(f"stable diffusion, {sd['size']}, {sd['steps']} steps: {sd['s_per_image']} s per image ({sd['s_per_step']} s per step), "
          f"peak GPU {sd['peak_gpu_mb']} MB")
if failed:
    print(f"failed: {', '.join(failed)} (its output above says why)")
EOF
[ ${#failed[@]} -eq 0 ]
