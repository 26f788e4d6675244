"""What ``preset="default"`` picks on a development set, and why.

    .venv/bin/python benchmarks/auto_routing.py --set horse --protocol paper
    .venv/bin/python benchmarks/auto_routing.py --set nuclei --protocol full

Prints how many images go to each preset, then, for the 8-bit colour images (the only
ones whose pick depends on their content), the spread of the centre-against-frame
contrast (:func:`napari_iem.engine.autopreset.centre_contrast`) and the images nearest the
threshold.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from evaluate import DATA, load_set
from napari_iem.engine.autopreset import MAX_CENTRE_CONTRAST, centre_contrast, choose_preset
from napari_iem.engine.colour import is_grey_rgb


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="horse",
                        help="data set name under ../shared/data, or a folder path")
    parser.add_argument("--protocol", choices=["paper", "full"], default="paper")
    parser.add_argument("--show", type=int, default=5, help="images listed each side")
    args = parser.parse_args(argv)
    root = Path(args.set) if Path(args.set).is_dir() else DATA / args.set
    items = load_set(root, args.protocol, None, False)
    picks = Counter(choose_preset(img) for _, img, _, _ in items)
    print(f"{root.name}: {len(items)} images, protocol {args.protocol}; auto picks "
          + ", ".join(f"{name} {n}" for name, n in sorted(picks.items())))
    colour = []
    for stem, img, _, _ in items:
        rgb = img[..., :3] if img.ndim == 3 else img
        if img.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[-1] == 3 \
                and not is_grey_rgb(rgb):
            colour.append((centre_contrast(rgb), stem))
    if not colour:
        return
    colour.sort()
    values = np.array([v for v, _ in colour])
    print(f"8-bit colour images: {len(colour)}; centre contrast min {values.min():.3f}, "
          f"median {np.median(values):.3f}, max {values.max():.3f}; "
          f"below {MAX_CENTRE_CONTRAST} (microscopy): {(values < MAX_CENTRE_CONTRAST).sum()}")
    below = [c for c in colour if c[0] < MAX_CENTRE_CONTRAST][-args.show:]
    above = [c for c in colour if c[0] >= MAX_CENTRE_CONTRAST][: args.show]
    print("nearest the threshold: "
          + ", ".join(f"{s[:12]} {v:.3f}" for v, s in below) + " | "
          + ", ".join(f"{s[:12]} {v:.3f}" for v, s in above))


if __name__ == "__main__":
    main()
