"""Per-iteration cost of the engine kernels by image size, before and after, side by side.

    python benchmarks/bench_kernels.py [--baseline 98d9ba7] [--sizes 128,256,512,1024,2048]
                                       [--rounds 11] [--threads 0] [--device cpu]

Prints ms per megapixel per iteration (one image, K = 2, paper preset parameters, RGB
and grey) for the engine as it is and for the engine kernels (``engine/inpaint.py``,
``objective.py``, ``optimize.py``) of the git revision ``--baseline``, loaded from git
into this process.  The machine this was written on is shared, so absolute times are
noisy: the two versions alternate iteration by iteration in one process, every figure
is a median over rounds, and the ratio is the figure to read.  An iteration is one call
of the optimiser's loop (gains, flips, smoothing, cycle bookkeeping), cycle detection
off so that no image stops.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
ENGINE = "src/napari_iem/engine"
KERNELS = ("inpaint", "objective", "optimize")


def load_baseline(rev: str) -> types.ModuleType:
    """The optimiser module of revision ``rev``, its kernels loaded from git.

    The modules are executed as a package ``_iem_baseline`` whose other imports
    (``presets``) resolve to today's modules, so both versions take the same parameters.
    """
    from napari_iem.engine import presets

    pkg = types.ModuleType("_iem_baseline")
    pkg.__path__ = []
    sys.modules["_iem_baseline"] = pkg
    sys.modules["_iem_baseline.presets"] = presets
    for name in KERNELS:
        src = subprocess.run(["git", "show", f"{rev}:{ENGINE}/{name}.py"], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout
        mod = types.ModuleType(f"_iem_baseline.{name}")
        mod.__package__ = "_iem_baseline"
        sys.modules[mod.__name__] = mod
        exec(compile(src, f"{rev}:{name}.py", "exec"), mod.__dict__)
        setattr(pkg, name, mod)
    return pkg.optimize


def test_image(size: int, channels: int, device: str) -> torch.Tensor:
    """scikit-image's astronaut at ``size`` x ``size`` in [-1, 1] (grey: channel mean)."""
    from skimage import data
    from skimage.transform import resize

    im = resize(data.astronaut(), (size, size), order=1, preserve_range=True)
    x = torch.from_numpy(im).permute(2, 0, 1)[None].float() / 255 * 2 - 1
    if channels == 1:
        x = x.mean(1, keepdim=True)
    return x.contiguous().to(device)


def running(module, x: torch.Tensor, params):
    """A generator of iterations that never stops (cycle detection off)."""
    module.CYCLE_WINDOW = 0
    gen = module.optimize(x, 2, params)
    next(gen)  # the start: building the filter and the first evaluation
    next(gen)
    return gen


def sync(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(gens: dict, device: str, rounds: int, per_round: int) -> dict:
    """Median seconds per iteration of each generator, alternating between them (in
    the order A B, B A, A B, ... so that a drift of the machine's load cancels)."""
    times = {name: [] for name in gens}
    for r in range(rounds):
        for name in (list(gens) if r % 2 == 0 else list(gens)[::-1]):
            gen = gens[name]
            sync(device)
            t0 = time.perf_counter()
            for _ in range(per_round):
                next(gen)
            sync(device)
            times[name].append((time.perf_counter() - t0) / per_round)
    return {name: statistics.median(t) for name, t in times.items()}


def filter_table(sizes, maps: int, rounds: int, device: str):
    """ms per mega-element of one axis filter, by method and axis length: the
    measurement behind ``inpaint.DENSE_MAX`` and ``inpaint.BLOCK``."""
    from napari_iem.engine.inpaint import apply_axis, axis_operator

    methods = {"dense": (10**9, 64)} | {f"blocks {b}": (0, b) for b in (32, 64, 128)}
    print(f"\nfilter along one axis of {maps} maps of n x n, ms per mega-element "
          f"(median of {rounds} rounds, methods alternating)")
    print("| n | axis | " + " | ".join(methods) + " |")
    print("|---|---|" + "---|" * len(methods))
    for n in sizes:
        x = torch.rand(maps, n, n, device=device)
        ops = {name: axis_operator(n, 11, 5.0, 2, dense_max, block).to(device, x.dtype)
               for name, (dense_max, block) in methods.items()}
        for axis, view in (("rows", x), ("last", x.reshape(maps * n, n, 1))):
            times = {name: [] for name in ops}
            for _ in range(rounds):
                for name, op in ops.items():
                    sync(device)
                    t0 = time.perf_counter()
                    apply_axis(view, op)
                    sync(device)
                    times[name].append(time.perf_counter() - t0)
            me = maps * n * n / 1e6
            print(f"| {n} | {axis} | " + " | ".join(
                f"{1e3 * statistics.median(t) / me:.1f}" for t in times.values()) + " |",
                flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="98d9ba7", help="git revision to compare with")
    parser.add_argument("--sizes", default="128,256,512,1024,2048")
    parser.add_argument("--channels", default="3,1")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--filters", action="store_true",
                        help="also time each filter method per axis length")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from napari_iem.engine import optimize as current
    from napari_iem.engine.presets import PRESETS

    baseline = load_baseline(args.baseline)
    params = PRESETS["paper"].replace(max_iter=100_000)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"baseline {args.baseline}; ms per megapixel per iteration, median of "
          f"{args.rounds} rounds, versions alternating")
    print("| size | channels | baseline | now | speed-up |")
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        for channels in (int(c) for c in args.channels.split(",")):
            x = test_image(size, channels, args.device)
            mp = size * size / 1e6
            per_round = max(1, round(0.1 / mp))  # a few tens of ms of work a round
            gens = {"baseline": running(baseline, x, params), "now": running(current, x, params)}
            t = measure(gens, args.device, args.rounds, per_round)
            print(f"| {size}x{size} | {channels} | {1e3 * t['baseline'] / mp:.0f} | "
                  f"{1e3 * t['now'] / mp:.0f} | {t['baseline'] / t['now']:.2f}x |", flush=True)
            for gen in gens.values():
                gen.close()
    if args.filters:
        filter_table([int(s) for s in args.sizes.split(",")], 8, 2 * args.rounds + 1,
                     args.device)


if __name__ == "__main__":
    main()
