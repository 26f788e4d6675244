"""Microscopy instances (issue 4): foreground IoU and instance F1 on the nuclei set.

Compares, on ``../shared/data/nuclei`` at full size (``images/``, ``masks/``,
``labels/``):

* Otsu on grey, bright = foreground, connected components (scikit-image);
* Otsu + distance-transform watershed (:func:`napari_iem.analysis.instances.split_instances`);
* IEM (``--preset``, ``default`` unless told), connected components;
* IEM + distance-transform watershed (``segment(..., instances=True)``).

Every method gets one polarity, the one it picks itself (no oracle flip): Otsu takes
bright as foreground, IEM its border rule.  Metrics per image, then averaged: fixed-
polarity foreground IoU, and object F1 at IoU > 0.5 against the instance labels
(:func:`napari_iem.analysis.metrics.instance_f1`).  From the repository root::

    .venv/bin/python benchmarks/evaluate_instances.py --every 4 --max-size 256
    .venv/bin/python benchmarks/evaluate_instances.py --limit 10 --json

``--every N`` takes every N-th image by name (a spread subset when time is short);
``--max-size`` is IEM's working resolution, with ``--refine`` (default on) the boundary
is refined at full size (:mod:`napari_iem.engine.multiscale`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "nuclei"
sys.path.insert(0, str(REPO / "benchmarks"))


def fixed_iou(pred, mask) -> float:
    pred, mask = np.asarray(pred) > 0, np.asarray(mask) > 0
    union = (pred | mask).sum()
    return float((pred & mask).sum() / union) if union else 1.0


def main(argv=None) -> int:
    from napari_iem import segment
    from napari_iem.analysis.instances import split_instances
    from napari_iem.files.io import read_image, read_labels
    from napari_iem.analysis.metrics import instance_f1
    from evaluate import otsu  # the same Otsu baseline as benchmarks/evaluate.py

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--limit", type=int)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--max-size", type=int, default=256)
    parser.add_argument("--no-refine", dest="refine", action="store_false")
    parser.add_argument("--max-iter", type=int)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    root = Path(args.data)
    stems = sorted(p.stem for p in (root / "images").glob("*.png"))[:: args.every]
    if args.limit:
        stems = stems[: args.limit]
    methods = ["Otsu", "Otsu + watershed", "IEM", "IEM + watershed"]
    scores = {m: {"iou": [], "f1": [], "seconds": 0.0} for m in methods}
    overrides = {"max_size": args.max_size, "refine": args.refine, "maps": False,
                 "preset": args.preset}
    if args.max_iter:
        overrides["max_iter"] = args.max_iter
    for n, stem in enumerate(stems, 1):
        image = read_image(root / "images" / f"{stem}.png")
        mask = read_labels(root / "masks" / f"{stem}.png") > 0
        gt = read_labels(root / "labels" / f"{stem}.png")
        t = time.perf_counter()
        o = otsu(image)
        t_otsu = time.perf_counter() - t
        t = time.perf_counter()
        o_ws = split_instances(o)
        t_ws = time.perf_counter() - t
        t = time.perf_counter()
        res = segment(image, instances=True, **overrides)
        t_iem = time.perf_counter() - t
        preds = {
            "Otsu": (o, None, t_otsu),
            "Otsu + watershed": (o, o_ws, t_otsu + t_ws),
            "IEM": (res.labels, None, t_iem),
            "IEM + watershed": (res.labels, res.instances, t_iem),
        }
        for m, (sem, inst, secs) in preds.items():
            scores[m]["iou"].append(fixed_iou(sem, mask))
            if inst is None:
                f1 = instance_f1(sem, gt, connectivity=1)["f1"]
            else:
                f1 = instance_f1(inst, gt)["f1"]
            scores[m]["f1"].append(f1)
            scores[m]["seconds"] += secs
        print(f"[{n}/{len(stems)}] {stem[:12]} {image.shape} IEM IoU "
              f"{scores['IEM']['iou'][-1]:.3f} F1 {scores['IEM + watershed']['f1'][-1]:.3f}"
              f" ({t_iem:.1f} s)", file=sys.stderr, flush=True)
    rows = [
        {"method": m, "n_images": len(stems), "fg_iou": float(np.mean(s["iou"])),
         "instance_f1": float(np.mean(s["f1"])),
         "seconds_per_image": s["seconds"] / max(1, len(stems))}
        for m, s in scores.items()
    ]
    if args.json:
        print(json.dumps({"settings": vars(args), "rows": rows}, indent=1))
        return 0
    print(f"nuclei: {len(stems)} images (every {args.every}), IEM preset {args.preset}, "
          f"max_size={args.max_size}, refine={args.refine}")
    print("| method | fg IoU | instance F1@0.5 | s/image |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {100 * r['fg_iou']:.1f} | {100 * r['instance_f1']:.1f} "
              f"| {r['seconds_per_image']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
