"""Where the time of one ``segment_batch`` call goes: Python functions and torch kernels.

    python benchmarks/profile_engine.py [--device cuda] [--batch 64] [--size 128]

Prints the seconds of the whole call, then the
Python functions by cumulative and by own time (cProfile: a wait for the GPU shows up
in the call that waited, ``tolist`` or ``cpu``), then the torch operators by their time
on the device (torch.profiler).  Images as in ``bench_engine.py``; paper preset unless
``--preset``.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench_engine import HORSES, photos, sync
from napari_iem import segment_batch


def timed(images, device, **kw) -> float:
    t0 = time.perf_counter()
    segment_batch(images, 2, device=device, **kw)
    sync(torch.device(device))
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--horses", type=Path, default=HORSES)
    parser.add_argument("--rows", type=int, default=25)
    args = parser.parse_args(argv)
    images = photos(args.batch, args.size, args.horses)
    kw = dict(preset=args.preset)
    timed(images[:2], args.device, **kw)  # warm-up
    print(f"{args.batch} images of {args.size}x{args.size} on {args.device}, preset "
          f"{args.preset}: {timed(images, args.device, **kw):.3f} s")

    prof = cProfile.Profile()
    prof.runcall(timed, images, args.device, **kw)
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(order).print_stats(args.rows)
        print(out.getvalue().split("\n", 6)[-1])

    cuda = args.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as p:
        timed(images, args.device, **kw)
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(p.key_averages().table(sort_by=key, row_limit=args.rows))


if __name__ == "__main__":
    main()
