"""Block mode on a synthetic image larger than a whole-image run allows.

Writes a SIZE x SIZE uint16 OME-Zarr (a few smooth blobs plus noise) chunk by chunk,
segments it with :func:`napari_iem.segment_blocks` (what ``napari-iem segment
IMG --out OUT --blocks`` runs) with 1 and with 2 local workers, and prints seconds,
the peak resident memory of each worker and blocks refined / total; then checks the
labels against ``segment(image, refine=True)`` on a crop small enough for both.

    python benchmarks/bench_blocks.py --size 16384 --block-size 2048 --max-size 1024
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BLOBS = ((0.3, 0.3, 0.08), (0.62, 0.55, 0.12), (0.2, 0.75, 0.05), (0.8, 0.2, 0.06))


def rows(size: int, r0: int, r1: int, seed: int = 0) -> np.ndarray:
    """Rows ``r0:r1`` of the synthetic image (the same whatever the cut)."""
    yy, xx = np.mgrid[r0:r1, 0:size].astype(np.float32) / size
    img = np.full(yy.shape, 300.0, np.float32)
    for cy, cx, r in BLOBS:
        img += 900 * np.exp(-((((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) ** 3))
    noise = np.random.default_rng([seed, r0]).normal(0, 60, img.shape)
    return (img + noise).clip(0, 65535).astype(np.uint16)


def write_image(path: Path, size: int, chunk: int) -> None:
    """The OME-Zarr, a row of chunks at a time, by the package's own NGFF writer."""
    import dask
    import dask.array as da

    from napari_iem.files.ome_zarr import write_ome_zarr_labels

    parts = [da.from_delayed(dask.delayed(rows)(size, r, min(r + chunk, size)),
                             (min(r + chunk, size) - r, size), np.uint16)
             for r in range(0, size, chunk)]
    image = da.concatenate(parts).rechunk(chunk)
    write_ome_zarr_labels(image, path, axes="yx", scale=[1.0, 1.0], provenance={},
                          chunks=(chunk, chunk))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16384)
    ap.add_argument("--block-size", type=int, default=2048)
    ap.add_argument("--max-size", type=int, default=1024)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--check-size", type=int, default=2048)
    args = ap.parse_args(argv)
    from napari_iem import segment, segment_blocks

    knobs = dict(preset="microscopy", max_size=args.max_size)
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "big.ome.zarr"
        t = time.perf_counter()
        write_image(src, args.size, args.block_size)
        print(f"wrote {args.size}x{args.size} uint16 OME-Zarr in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        for n in args.workers:
            out = Path(tmp) / f"labels-{n}.ome.zarr"
            run = segment_blocks(src, out, 2, block_size=args.block_size,
                                 workers=None if n == 1 else n, **knobs)
            peaks = ", ".join(f"{v / 2**20:.0f}" for v in run.peak_rss.values())
            print(f"workers={n}: {run.seconds:.1f} s, blocks refined {run.blocks_refined}"
                  f"/{run.blocks}, peak RSS per worker MB [{peaks}], estimated per "
                  f"block {run.block_bytes / 2**20:.0f} MB, working size "
                  f"{run.facts['working_shape']}", flush=True)
            shutil.rmtree(out, ignore_errors=True)
        small = rows(args.check_size, 0, args.check_size)
        check = dict(preset="microscopy", max_size=args.check_size // 8)
        whole = segment(small, refine=True, maps=False, **check)
        run = segment_blocks(small, None, 2, block_size=512, **check)
        same = bool((np.asarray(run.labels[:]) == whole.labels).all())
        print(f"equality at {args.check_size}x{args.check_size} (blocks of 512, "
              f"{run.blocks} blocks): {'identical' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
