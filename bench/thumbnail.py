"""How fast Stable Diffusion paints a thumbnail: seconds per image at the configured size.

Real weights cannot be downloaded here, so by default the bench builds a randomly initialised
pipeline with Stable Diffusion 1.5's shapes (UNet 860 M parameters, CLIP ViT-L/14 text encoder,
the 4-channel VAE) and loads it through the same from_pretrained code as real weights; the time
per step does not depend on the weights' values. `--model` takes a real pipeline.

    python bench/thumbnail.py [--width 512 --height 512 --steps 25 --images 2 --device auto --dtype float16]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from random_stable_diffusion import save_random_stable_diffusion  # noqa: E402

PROMPT = 'album cover art for the piano piece "Sakura", a grand piano in an atmospheric scene, cinematic lighting'
NEGATIVE = "text, letters, words, watermark, blurry, low quality"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a Stable Diffusion folder or hub id (default: random weights, SD 1.5's size)")
    parser.add_argument("--size", choices=["real", "tiny"], default="real", help="size of the random pipeline")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--images", type=int, default=2, help="seeds painted (after one warm-up image on a GPU)")
    parser.add_argument("--batch-size", type=int, default=0, help="images per call (0: per device)")
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="float16", help="on a GPU; the CPU runs float32")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import torch

    from covermill.models import stable_diffusion

    with tempfile.TemporaryDirectory() as scratch:
        model = args.model or str(save_random_stable_diffusion(Path(scratch) / "pipeline", args.size))
        options = {"model": model, "width": args.width, "height": args.height, "steps": args.steps, "device": args.device,
                   "dtype": args.dtype, "batch_size": args.batch_size, "scheduler": args.scheduler}
        started = time.perf_counter()
        painter = stable_diffusion.load(options)
        load_s = time.perf_counter() - started
        cuda = painter.device.startswith("cuda")
        if cuda:  # warm-up: kernels, allocator, first-call costs (the CPU has none worth an image)
            painter(PROMPT, NEGATIVE, [1000], until_safe=False)
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        drawn = painter(PROMPT, NEGATIVE, list(range(args.images)), until_safe=False)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started

    unet = sum(p.numel() for p in painter.pipeline.unet.parameters())
    figures = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "dtype": painter.dtype,
        "threads": torch.get_num_threads(),
        "model": args.model or f"random, {args.size}",
        "unet_parameters_m": round(unet / 1e6, 1),
        "scheduler": type(painter.pipeline.scheduler).__name__,
        "size": f"{args.width}x{args.height}",
        "steps": args.steps,
        "images": len(drawn),
        "batch_size": min(painter.batch_size, len(drawn)),
        "load_s": round(load_s, 2),
        "s_per_image": round(seconds / len(drawn), 2),
        "s_per_step": round(seconds / len(drawn) / args.steps, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if cuda else None,
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
