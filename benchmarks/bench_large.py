"""Large images: seconds and peak memory of the coarse-to-fine paths.

Each case runs in a fresh process (so its peak resident memory is its own) on a
synthetic image of nuclei-like bright blobs with known foreground::

    .venv/bin/python benchmarks/bench_large.py 2d        # 4096x4096 uint16
    .venv/bin/python benchmarks/bench_large.py volume    # 64x1024x1024 uint16, 3-D
    .venv/bin/python benchmarks/bench_large.py slices    # 64x1024x1024, every plane
    .venv/bin/python benchmarks/bench_large.py all --json

Settings: ``max_size`` (working resolution) 512 for 2-D and 256 for the stack,
``refine=True`` (full-resolution boundary band), ``maps=False``.  Prints seconds, peak
RSS of the process (``ru_maxrss``), the run's own memory estimate, the foreground IoU
against the known blobs, and the refinement's tile counts.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

CASES = {
    "2d": {"shape": (4096, 4096), "mode": "2d", "max_size": 512, "blobs": 300},
    "volume": {"shape": (64, 1024, 1024), "mode": "volume", "max_size": 256, "blobs": 40},
    "slices": {"shape": (64, 1024, 1024), "mode": "slices", "max_size": 256, "blobs": 40},
}


def blobs(shape, count, seed=0):
    """uint16 image: ``count`` textured bright ellipsoids (radius 3-6 % of the side)
    on a noisy background, plus their mask."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(shape, dtype=bool)
    side = max(shape[-2:])
    for _ in range(count):
        centre = [rng.uniform(0.1, 0.9) * n for n in shape]
        r = rng.uniform(0.03, 0.06) * side
        radii = [r if n >= side / 4 else max(3.0, r * n / side * 4) for n in shape]
        box = tuple(slice(max(0, int(c - q) - 1), min(n, int(c + q) + 2))
                    for c, q, n in zip(centre, radii, shape))
        grids = np.ogrid[box]
        inside = sum(((g - c) / q) ** 2 for g, c, q in zip(grids, centre, radii)) < 1
        truth[box] |= inside
    image = np.empty(shape, dtype=np.uint16)
    for i in range(shape[0]):  # plane by plane keeps the float temporaries small
        noise = rng.standard_normal(shape[1:], dtype=np.float32)
        plane = np.where(truth[i], 2400.0, 900.0) + 250 * noise
        image[i] = plane.clip(0, 65535)
    return image, truth


def run_case(name: str, preset: str = "photo") -> dict:
    from napari_iem import segment

    case = CASES[name]
    image, truth = blobs(case["shape"], case["blobs"])
    rss_input = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    res = segment(image, mode=case["mode"], max_size=case["max_size"], refine=True,
                  maps=False, device="cpu", preset=preset)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fg = res.labels > 0
    iou = float((fg & truth).sum() / max((fg | truth).sum(), 1))
    return {
        "case": name, "preset": preset, "shape": list(case["shape"]), "mode": case["mode"],
        "max_size": case["max_size"], "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak), "input_and_truth_mb": round(rss_input),
        "estimate_mb": {k: round(v / 2**20) for k, v in
                        res.metadata["memory_estimate_bytes"].items()},
        "iou": round(iou, 4), "iterations": res.iterations,
        "refine": res.metadata.get("refine"),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=[*CASES, "all"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--preset", default="photo")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        print(json.dumps(run_case(args.case, args.preset)))
        return
    names = list(CASES) if args.case == "all" else [args.case]
    rows = []
    for name in names:
        out = subprocess.run([sys.executable, __file__, name, "--inner",
                              "--preset", args.preset], check=True,
                             capture_output=True, text=True, cwd=REPO)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if not args.json:
            r = rows[-1]
            print(f"{r['case']:7s} {r['preset']:10s} {'x'.join(map(str, r['shape'])):>14s} "
                  f"max_size={r['max_size']:<4d} {r['seconds']:8.1f} s  "
                  f"peak {r['peak_rss_mb']:6d} MB (input+truth {r['input_and_truth_mb']} MB)"
                  f"  IoU {r['iou']:.3f}  refine {r['refine']}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
