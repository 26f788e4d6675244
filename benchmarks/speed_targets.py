"""The interactive-speed cases of issue 13, side by side: now against the target.

    python benchmarks/speed_targets.py [--cases coffee,photo512,photo2048,micro4096]
                                       [--repeat 3] [--device cpu]

Each case runs in a fresh process (so its peak resident memory is its own), ``--repeat``
times; the median seconds are shown with the target, whether every run converged (a run
that stopped at its iteration cap says so), the iterations and the peak memory.  The
images are built here (scikit-image samples, resized or tiled; a synthetic 16-bit
micrograph of bright blobs), so the table runs anywhere.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: name: (what, target seconds, target peak MB or None)
CASES = {
    "coffee": ("coffee 400x600 RGB, default, full size", 1.0, None),
    "photo512": ("astronaut 512x512 RGB, default", 1.0, None),
    "photo2048": ("astronaut 2048x2048 RGB, default", 5.0, None),
    "micro4096": ("4096x4096 uint16 micrograph, default", 15.0, 1536),
    "paper128": ("paper preset, one 128x128 photo (authors' code: 1.7 s)", 1.7 / 30, None),
}


def make_image(case: str):
    import numpy as np
    from skimage import data
    from skimage.transform import resize

    if case == "coffee":
        return data.coffee()
    if case in ("photo512", "photo2048", "paper128"):
        side = {"photo512": 512, "photo2048": 2048, "paper128": 128}[case]
        im = resize(data.astronaut(), (side, side), order=1, anti_aliasing=True)
        return (im * 255).astype(np.uint8)
    if case == "micro4096":
        sys.path.insert(0, str(REPO / "benchmarks"))
        from bench_large import blobs

        return blobs((4096, 4096), 300)[0]
    raise ValueError(case)


def child(case: str, device: str) -> None:
    """Run one case in this process and print one JSON line."""
    import resource
    import time

    from napari_iem import segment

    image = make_image(case)
    preset = "paper" if case == "paper128" else "default"
    segment(image[:64, :64], 2, preset=preset, device=device, max_iter=2)  # warm-up
    start = time.perf_counter()
    result = segment(image, 2, preset=preset, device=device, maps=False)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "seconds": seconds, "converged": result.converged,
        "iterations": result.iterations, "preset": result.params["preset"],
        "levels": result.metadata.get("levels"),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.device)
        return 0
    print("| case | seconds (median) | target | met | converged | iterations | levels "
          "| peak MB |")
    print("|---|---|---|---|---|---|---|---|")
    for case in args.cases.split(","):
        what, target, target_mb = CASES[case]
        runs = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, __file__, "--child", case, "--device", args.device],
                capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        met = seconds <= target and (target_mb is None or peak <= target_mb)
        converged = sum(r["converged"] for r in runs)
        mb_target = f" / {target_mb} MB" if target_mb else ""
        print(f"| {what} | {seconds:.2f} | {target:.2f} s{mb_target} | "
              f"{'yes' if met else 'no'} | {converged}/{len(runs)} | "
              f"{runs[0]['iterations']} | {runs[0]['levels']} | {peak:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
