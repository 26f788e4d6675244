"""Seconds per image of several presets, timed fairly: image by image, in turn.

Whole-set quality runs (``evaluate.py``) share the machine with whatever else runs, so
their seconds differ by run, not only by preset.  This script runs the presets one
after the other on each image of a development set, in one process, so every preset
sees the same load, and prints seconds per image, the ratio to the first preset and
the mean iterations.  Example, from the repository root::

    .venv/bin/python benchmarks/time_presets.py --set nuclei --protocol full \\
        --every 30 --presets paper microscopy default --threads 1
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from evaluate import DATA, load_set


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="horse",
                        help="data set name under ../shared/data, or a folder path")
    parser.add_argument("--protocol", choices=["paper", "full"], default="paper")
    parser.add_argument("--presets", nargs="+", default=["paper", "photo", "default"])
    parser.add_argument("--every", type=int, default=10, help="every N-th image by name")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from napari_iem.api import segment

    root = Path(args.set) if Path(args.set).is_dir() else DATA / args.set
    items = load_set(root, args.protocol, None, False)[:: args.every]
    seconds = {p: [] for p in args.presets}
    iterations = {p: [] for p in args.presets}
    for _, image, _, _ in items:
        for preset in args.presets:
            start = time.perf_counter()
            result = segment(image, 2, preset=preset, device=args.device)
            seconds[preset].append(time.perf_counter() - start)
            iterations[preset].append(result.iterations)
    first = float(np.mean(seconds[args.presets[0]]))
    print(f"{root.name}, protocol {args.protocol}, {len(items)} images "
          f"(every {args.every}th), torch threads {torch.get_num_threads()}")
    print(f"| preset | s/image | x {args.presets[0]} | mean iterations |")
    print("|---|---|---|---|")
    for preset in args.presets:
        mean = float(np.mean(seconds[preset]))
        print(f"| {preset} | {mean:.3f} | {mean / first:.2f} | "
              f"{np.mean(iterations[preset]):.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
