"""``preset="paper"`` against the masks the authors' own code produced.

    python benchmarks/paper_reference.py [--folder ../shared/data/paper-reference/horse128]
                                         [--device cpu] [--batch 169]

The folder holds ``images/`` (128x128 crops by the paper's protocol) and ``iem/`` (the
authors' masks, 0/255, 150 iterations, all images in one batch).  Prints how many masks
are identical, and for each one that is not, how many pixels differ.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np

from napari_iem import segment_batch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "data" / "paper-reference" / "horse128"


def compare(folder: Path, device: str = "cpu", batch: int = 0) -> dict:
    """Run the paper preset on every image of ``folder/images``; compare with ``iem/``."""
    files = sorted((folder / "images").glob("*.png"))
    images = [iio.imread(f)[..., :3] for f in files]
    expected = [iio.imread(folder / "iem" / f.name) > 127 for f in files]
    batch = batch or len(images)
    start = time.perf_counter()
    results = []
    for i in range(0, len(images), batch):
        results += segment_batch(images[i : i + batch], 2, preset="paper", device=device)
    seconds = time.perf_counter() - start
    differ = {}
    for f, r, e in zip(files, results, expected):
        n = int(np.count_nonzero((r.labels == 1) != e))
        if n:
            differ[f.stem] = n
    return {"images": len(files), "identical": len(files) - len(differ),
            "differ": differ, "seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=REFERENCE)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=0, help="images per batch (0: all)")
    args = ap.parse_args(argv)
    out = compare(args.folder, args.device, args.batch)
    print(f"paper preset vs the authors' masks: {out['identical']} of {out['images']} "
          f"identical ({out['seconds']:.1f} s on {args.device})")
    for stem, n in out["differ"].items():
        print(f"  {stem}: {n} pixels differ")
    return 0 if not out["differ"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
