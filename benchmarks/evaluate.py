"""Score IEM (and optional scikit-image baselines) on a development set.

Runs a preset over ``../shared/data/<set>`` (``images/`` and ``masks/``), under the
paper's 128x128 protocol or at full size, and prints the metrics table of
``docs/evaluation.md`` with seconds per image.  Examples, from the repository root::

    .venv/bin/python benchmarks/evaluate.py --set horse --protocol paper --baselines
    .venv/bin/python benchmarks/evaluate.py --set sod --protocol paper --threads 1
    .venv/bin/python benchmarks/evaluate.py --set horse --limit 5
    .venv/bin/python benchmarks/evaluate.py --set nuclei --protocol full --instances
    .venv/bin/python benchmarks/evaluate.py --set horse --preset paper --batch 64 --json
    .venv/bin/python benchmarks/evaluate.py --set nuclei --protocol full \
        --preset microscopy --param intensity=linear --param sigma=3

Baselines: Otsu's threshold on grey (bright = foreground) and morphological Chan-Vese
(100 iterations, checkerboard start; its label 1 is taken as foreground).  Metrics: see
:mod:`napari_iem.analysis.metrics` (Acc, IoU, Dice with the oracle's flip, mIoU, fixed IoU).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def grey(image: np.ndarray) -> np.ndarray:
    """Float grey in [0, 1] (RGB by luminance; other dtypes by their range)."""
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[-1] == 3:
        return rgb2gray(img)
    if img.ndim == 3:
        img = img[..., 0]
    return img_as_float(img)


def otsu(image: np.ndarray) -> np.ndarray:
    from skimage.filters import threshold_otsu

    g = grey(image)
    return (g > threshold_otsu(g)).astype(np.uint8) if g.min() < g.max() else \
        np.zeros(g.shape, np.uint8)


def chan_vese(image: np.ndarray) -> np.ndarray:
    from skimage.segmentation import morphological_chan_vese

    return morphological_chan_vese(grey(image), num_iter=100,
                                   init_level_set="checkerboard").astype(np.uint8)


def load_set(root: Path, protocol: str, limit: int | None, instances: bool):
    from napari_iem.files.io import read_image, read_labels
    from napari_iem.analysis.metrics import paper_protocol

    images_dir, masks_dir = root / "images", root / "masks"
    if not images_dir.is_dir() or not masks_dir.is_dir():
        sys.exit(f"evaluate.py: {root} needs images/ and masks/ folders")
    stems = sorted(p.stem for p in images_dir.glob("*.png"))
    if limit:
        stems = stems[:limit]
    items = []
    for stem in stems:
        img = read_image(images_dir / f"{stem}.png")
        mask = read_labels(masks_dir / f"{stem}.png")
        lab = None
        if instances and (root / "labels" / f"{stem}.png").is_file():
            lab = read_labels(root / "labels" / f"{stem}.png")
        if protocol == "paper":
            img, mask = paper_protocol(img), paper_protocol(mask)
            lab = None if lab is None else paper_protocol(lab)
        items.append((stem, img, mask, lab))
    return items


def parse_params(pairs) -> dict:
    """``["sigma=3", "init=kmeans"]`` as typed parameter overrides (checked by the
    same rules as a settings file, :mod:`napari_iem.files.settings`)."""
    from napari_iem.files.settings import SettingsError, validate_settings

    raw = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            sys.exit(f"evaluate.py: --param needs NAME=VALUE, got {pair!r}")
        try:
            raw[name] = json.loads(value)
        except json.JSONDecodeError:
            raw[name] = value  # a word such as kmeans
    try:
        return validate_settings({"params": raw}, source="--param")["params"]
    except SettingsError as exc:
        sys.exit(f"evaluate.py: {exc}")


def run_iem(items, args):
    from napari_iem.api import segment, segment_batch

    overrides = parse_params(args.param)
    if args.iterations:
        overrides["max_iter"] = args.iterations
    if args.size:
        overrides["max_size"] = args.size
    kw = dict(preset=args.preset, device=args.device, **overrides)
    preds, iters, ends = [], [], []
    start = time.perf_counter()
    if args.batch:
        results = (r for i in range(0, len(items), args.batch)
                   for r in segment_batch([im for _, im, _, _ in items[i:i + args.batch]],
                                          args.regions, **kw))
    else:
        results = (segment(im, args.regions, **kw) for _, im, _, _ in items)
    for r in results:
        preds.append(r.labels)
        iters.append(r.iterations)
        ends.append((bool(r.converged), bool(r.stopped_at_cap)))
    seconds = time.perf_counter() - start
    return preds, seconds, iters, ends


def run_baseline(fn, items):
    start = time.perf_counter()
    preds = [fn(im) for _, im, _, _ in items]
    return preds, time.perf_counter() - start


def score(name, preds, items, seconds, instances):
    from napari_iem.analysis.metrics import evaluate_pairs, instance_f1

    mean, per_image = evaluate_pairs(preds, [m for _, _, m, _ in items])
    row = {"method": name, **mean, "seconds_per_image": seconds / max(1, len(items))}
    labs = [(p, lab) for p, (_, _, _, lab) in zip(preds, items) if lab is not None]
    if instances and labs:
        row["instance_f1"] = float(np.mean([instance_f1(p, lab, connectivity=1)["f1"]
                                            for p, lab in labs]))
    return row, per_image


def table(rows) -> str:
    cols = [("acc", "Acc"), ("iou", "IoU"), ("miou", "mIoU"), ("dice", "Dice"),
            ("fixed_iou", "fixed IoU")]
    if any("instance_f1" in r for r in rows):
        cols.append(("instance_f1", "F1@0.5"))
    head = ["method"] + [t for _, t in cols] + ["s/image", "n", "converged", "at cap"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["method"]] + [f"{100 * r[k]:.1f}" if k in r else "" for k, _ in cols]
        cells += [f"{r['seconds_per_image']:.3f}", str(r["n_images"]),
                  f"{100 * r['converged']:.0f}%" if "converged" in r else "",
                  f"{100 * r['at_cap']:.0f}%" if "at_cap" in r else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="horse",
                        help="data set name under ../shared/data, or a folder path")
    parser.add_argument("--protocol", choices=["paper", "full"], default="paper")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--regions", type=int, default=2)
    parser.add_argument("--iterations", type=int, help="override max_iter")
    parser.add_argument("--size", type=int, help="override max_size (working resolution)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="override one preset parameter (repeatable), e.g. sigma=3")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads (a shared machine)")
    parser.add_argument("--limit", type=int, help="only the first N images (by name)")
    parser.add_argument("--batch", type=int, default=0, metavar="N",
                        help="segment N images per segment_batch call (0: one by one)")
    parser.add_argument("--baselines", action="store_true",
                        help="also Otsu and morphological Chan-Vese (scikit-image)")
    parser.add_argument("--no-iem", action="store_true", help="baselines only")
    parser.add_argument("--instances", action="store_true",
                        help="also instance F1 at IoU 0.5 against labels/ (nuclei)")
    parser.add_argument("--json", action="store_true", help="print JSON rows")
    parser.add_argument("--per-image", metavar="CSV",
                        help="write per-image IEM metrics to this CSV file")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    root = Path(args.set) if Path(args.set).is_dir() else DATA / args.set
    items = load_set(root, args.protocol, args.limit, args.instances)
    if not items:
        sys.exit(f"evaluate.py: no images in {root / 'images'}")
    print(f"{root.name}: {len(items)} images, protocol {args.protocol}", file=sys.stderr)
    rows = []
    if not args.no_iem:
        preds, seconds, iters, ends = run_iem(items, args)
        name = f"IEM {args.preset}" + (f", {args.iterations} it" if args.iterations else "")
        name += "".join(f", {p}" for p in args.param)
        row, per_image = score(name, preds, items, seconds, args.instances)
        row["median_iterations"] = float(np.median(iters))
        row["converged"] = float(np.mean([c for c, _ in ends]))  # at a fixed point
        row["at_cap"] = float(np.mean([a for _, a in ends]))  # the rest: in a cycle
        rows.append(row)
        if args.per_image:
            import csv

            with open(args.per_image, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["stem", *per_image[0].keys(), "iterations"])
                for (stem, *_), r, it in zip(items, per_image, iters):
                    w.writerow([stem, *r.values(), it])
    if args.baselines:
        for name, fn in [("Otsu on grey, bright = fg", otsu),
                         ("morph. Chan-Vese, 100 it, checkerboard", chan_vese)]:
            preds, seconds = run_baseline(fn, items)
            rows.append(score(name, preds, items, seconds, args.instances)[0])
    if args.json:
        print(json.dumps({"set": root.name, "protocol": args.protocol, "rows": rows},
                         indent=2))
    else:
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
