"""IEM alone against IEM + a student network trained on IEM's masks (the paper's
optional second stage, :mod:`napari_iem.analysis.distill`).

Unsupervised throughout: IEM segments every image of the set, a small U-Net is trained
on *all* of those masks (the ground truth is never used for training, only to score),
and the student then predicts every image.  Both are scored with
:mod:`napari_iem.analysis.metrics` under the paper's 128x128 protocol.  From the repository
root::

    .venv/bin/python benchmarks/evaluate_distill.py --set horse --preset default
    .venv/bin/python benchmarks/evaluate_distill.py --set nuclei --preset microscopy

IEM's masks are cached (``--cache``, default ``/tmp/napari-iem-distill-<set>-<preset>.npz``)
so that reruns only train and predict.  One torch thread unless ``--threads``.
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
sys.path.insert(0, str(REPO / "benchmarks"))


def iem_masks(items, preset: str, device: str, cache: Path | None):
    """IEM labels of every image (from ``cache`` when it holds the same stems, made
    with the same presets: a preset that changed, or that "default" may pick,
    invalidates it)."""
    from napari_iem.engine.presets import PRESETS
    from napari_iem.api import segment

    stems = [s for s, *_ in items]
    params = json.dumps({name: p.to_dict() for name, p in PRESETS.items()}, sort_keys=True)
    if cache is not None and cache.is_file():
        data = np.load(cache)
        if list(data["stems"]) == stems and "params" in data and str(data["params"]) == params:
            print(f"IEM masks from {cache}", file=sys.stderr)
            return list(data["masks"]), float(data["seconds"])
    preds = []
    start = time.perf_counter()
    for i, (_, im, _, _) in enumerate(items):
        preds.append(segment(im, 2, preset=preset, device=device).labels.astype(np.uint8))
        if (i + 1) % 20 == 0:
            print(f"IEM {i + 1}/{len(items)}", file=sys.stderr)
    seconds = time.perf_counter() - start
    if cache is not None:
        np.savez_compressed(cache, stems=np.array(stems), masks=np.stack(preds),
                            seconds=seconds, params=np.array(params))
    return preds, seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="horse",
                        help="data set name under ../shared/data, or a folder path")
    parser.add_argument("--preset", default="default", help="IEM preset")
    parser.add_argument("--epochs", type=int, default=None,
                        help="student epochs (default: napari_iem.analysis.distill's default)")
    parser.add_argument("--size", type=int, default=None,
                        help="student working size (default: distill's default)")
    parser.add_argument("--width", type=int, default=None,
                        help="student width (default: distill's default)")
    parser.add_argument("--depth", type=int, default=None,
                        help="student depth (default: distill's default)")
    parser.add_argument("--lr", type=float, default=None, help="student peak lr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=1,
                        help="train this many students (seeds seed, seed+1, ...) and "
                             "report each")
    parser.add_argument("--vflip", action="store_true",
                        help="also vertical flips (micrographs)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, help="only the first N images (by name)")
    parser.add_argument("--cache", help="npz file caching IEM's masks ('' for none)")
    parser.add_argument("--json", action="store_true", help="also print JSON rows")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from evaluate import load_set, score, table
    from napari_iem.analysis import distill

    root = Path(args.set) if Path(args.set).is_dir() else DATA / args.set
    items = load_set(root, "paper", args.limit, False)
    if not items:
        sys.exit(f"evaluate_distill.py: no images in {root / 'images'}")
    print(f"{root.name}: {len(items)} images, protocol paper", file=sys.stderr)
    cache = (Path(f"/tmp/napari-iem-distill-{root.name}-{args.preset}"
                  f"{'-' + str(args.limit) if args.limit else ''}.npz")
             if args.cache is None else (Path(args.cache) if args.cache else None))
    masks, iem_seconds = iem_masks(items, args.preset, args.device, cache)
    row, iem_per_image = score(f"IEM {args.preset}", masks, items, iem_seconds, False)
    rows = [row]
    rows[0]["train_seconds"] = 0.0

    images = [im for _, im, _, _ in items]
    kw = {}
    for name in ("epochs", "size", "width", "depth", "lr"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    for seed in range(args.seed, args.seed + args.seeds):
        t0 = time.perf_counter()
        model = distill.train_student(images, masks, device=args.device, seed=seed,
                                      vflip=args.vflip, **kw)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        preds = distill.predict_student(model, images, device=args.device)
        pred_s = time.perf_counter() - t0
        row, per_image = score(f"IEM {args.preset} + student (seed {seed})", preds, items,
                               pred_s, False)
        delta = np.array([b["fixed_iou"] - a["fixed_iou"]
                          for a, b in zip(iem_per_image, per_image)])
        row["images_better"] = int((delta > 0.01).sum())  # fixed IoU, by > 1 point
        row["images_worse"] = int((delta < -0.01).sum())
        row["train_seconds"] = train_s
        row["student"] = {"epochs": model.config["epochs"], "size": model.config["size"],
                          "width": model.config["width"],
                          "depth": model.config["depth"], "lr": model.config["lr"],
                          "final_loss": model.config["losses"][-1]}
        rows.append(row)
        print(f"seed {seed}: trained in {train_s:.0f} s, predicted in {pred_s:.1f} s; "
              f"fixed IoU better than IEM's on {row['images_better']} images, worse on "
              f"{row['images_worse']} (by more than 1 point)", file=sys.stderr)

    text = table(rows).splitlines()
    # add the training seconds as a last column
    text[0] += " train s |"
    text[1] += "---|"
    for i, r in enumerate(rows):
        text[2 + i] += f" {r['train_seconds']:.0f} |"
    print("\n".join(text))
    if args.json:
        print(json.dumps({"set": root.name, "protocol": "paper", "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
