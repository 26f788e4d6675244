"""Throughput of the batch runner: sequential vs batched vs Dask with 1 and 2 workers.

Makes N synthetic 128x128 images and M synthetic 1024x1024 images (textured discs on a
textured background, RGB PNG) in a temporary folder, segments each set with
:func:`napari_iem.batch.run.run_batch` in four ways and prints images per second:

* ``sequential``: in-process, one image per task (one ``segment_batch`` call per image);
* ``batched``: in-process, up to 32 same-size images per ``segment_batch`` call;
* ``dask-1``, ``dask-2``: a local Dask cluster with 1 or 2 worker processes (worker
  start-up, a few seconds, included in the time, as a user would see it; the in-process
  modes run after a warm-up).

Every mode must give the same labels as ``sequential``; the last column checks it.
Examples, from the repository root::

    .venv/bin/python benchmarks/bench_batch.py                       # 500 + 20 images
    .venv/bin/python benchmarks/bench_batch.py --small 20 --large 2 --iterations 20
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_iem.files.read import read_labels

MODES = {
    "sequential": dict(workers=0, task_images=1),
    "batched": dict(workers=0, task_images=32),
    "dask-1": dict(workers=1, task_images=32),
    "dask-2": dict(workers=2, task_images=32),
}


def synthetic(size: int, seed: int) -> np.ndarray:
    """A textured disc at a random place on a textured background, RGB uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    cy, cx = rng.uniform(0.35, 0.65, 2)
    r = rng.uniform(0.15, 0.3)
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    fg = rng.uniform(120, 200, 3)
    bg = rng.uniform(40, 110, 3)
    tex = 12 * np.sin(2 * np.pi * (xx * rng.uniform(5, 15) + yy * rng.uniform(5, 15)))
    img = np.where(inside[..., None], fg, bg) + tex[..., None]
    img += rng.normal(0, 10, img.shape)
    return img.clip(0, 255).astype(np.uint8)


def make_set(folder: Path, n: int, size: int, seed0: int) -> Path:
    import imageio.v3 as iio

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        iio.imwrite(folder / f"img{size}_{i:04d}.png", synthetic(size, seed0 + i))
    return folder


def labels_of(out: Path) -> dict:

    return {p.name: read_labels(p) for p in sorted(out.glob("*.png"))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Images per second of the batch runner in four modes.",
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--small", type=int, default=500, metavar="N",
                        help="number of 128x128 images (default 500)")
    parser.add_argument("--large", type=int, default=20, metavar="M",
                        help="number of 1024x1024 images (default 20)")
    parser.add_argument("--small-size", type=int, default=128)
    parser.add_argument("--large-size", type=int, default=1024)
    parser.add_argument("--preset", default="photo")
    parser.add_argument("--iterations", type=int, help="override max_iter")
    parser.add_argument("--size", type=int, help="override max_size (working resolution)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--workdir", help="keep images and outputs here (default: temp)")
    args = parser.parse_args(argv)

    from napari_iem.batch.run import run_batch

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s) {sorted(unknown)}")
    overrides = {}
    if args.iterations:
        overrides["max_iter"] = args.iterations
    if args.size:
        overrides["max_size"] = args.size

    tmp = None
    if args.workdir:
        work = Path(args.workdir)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="iem-bench-")
        work = Path(tmp.name)
    sets = []
    if args.small:
        sets.append((f"{args.small_size}x{args.small_size}",
                     make_set(work / "small", args.small, args.small_size, 0)))
    if args.large:
        sets.append((f"{args.large_size}x{args.large_size}",
                     make_set(work / "large", args.large, args.large_size, 10_000)))

    # Warm up this process (imports, first torch calls) so that the first mode timed
    # does not pay for it; Dask workers pay their own start-up, as a user would.
    from napari_iem.api import segment

    segment(synthetic(64, 1), preset=args.preset, max_iter=2)

    rows = []
    for name, folder in sets:
        n = len(list(folder.glob("*.png")))
        reference = None
        for mode in modes:
            out = work / f"out-{folder.name}-{mode}"
            start = time.perf_counter()
            rep = run_batch(folder, out, preset=args.preset, overwrite=True,
                            progress=False, **MODES[mode], **overrides)
            seconds = time.perf_counter() - start
            got = labels_of(out)
            if reference is None:
                reference = got
                same = "-"
            else:
                same = "yes" if got.keys() == reference.keys() and all(
                    np.array_equal(got[k], reference[k]) for k in got) else "NO"
            rows.append((name, mode, n, seconds, n / seconds, rep.failed, same))
            print(f"{name} {mode}: {seconds:.1f} s ({rep.mode})", file=sys.stderr)

    print("| images | mode | n | seconds | images/s | failed | same labels |")
    print("|---|---|---|---|---|---|---|")
    for name, mode, n, seconds, rate, failed, same in rows:
        print(f"| {name} | {mode} | {n} | {seconds:.1f} | {rate:.2f} | {failed} | {same} |")
    if tmp is not None:
        tmp.cleanup()
    return 0 if all(r[-1] != "NO" and r[-2] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
