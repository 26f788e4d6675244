"""Foreground rules scored offline on cached two-region segmentations.

The foreground rule (:func:`napari_iem.engine.foreground.region_order`) is applied after
the optimisation, so a set is segmented once with ``foreground="init"`` (the optimiser's
own numbers) and every rule is then scored on the cached labels in seconds: fixed
polarity IoU (the rule's choice) beside the best polarity per image, how many images a
rule flips against the current preset's rule, and how much of its gain or loss comes
from its few largest images (a gain carried by a handful of images is not a rule).

Two steps, from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/foreground_rules.py dump --set sod \
        --protocol paper --threads 1
    .venv/bin/python benchmarks/foreground_rules.py score --set sod --protocol paper

``dump`` runs the ``default`` preset (or ``--preset``) with ``foreground="init"`` and
keeps, per image, the optimiser's labels and the prepared image it worked on (the
working grid, channels first: exactly what ``region_order`` gets in the engine), the
picked preset and the ground truth, in ``tmp/foreground/<set>-<protocol>.npz``.
``score`` prints the table of docs/evaluation.md; ``--show N`` lists the N images where
a rule and the current rule disagree most.
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import DATA, REPO, load_set  # noqa: E402

CACHE = REPO / "tmp" / "foreground"

#: The rules scored by ``score``: those of engine/foreground.py, ``preset`` (the picked
#: preset's own rule: ``centre`` for photos, ``area`` for micrographs) and two measured
#: and not adopted, defined below (``frame``, ``saliency``).
RULES = ("init", "border", "area", "centre", "frame", "saliency")


def _frame(labels):
    f = np.zeros(labels.shape, bool)
    f[0] = f[-1] = True
    f[:, 0] = f[:, -1] = True
    return f


def frame_background(labels, image):
    """Background: the region whose share of the frame most exceeds its share of the
    area (border contact normalised by size)."""
    area = np.bincount(labels.ravel(), minlength=2) + 0.5
    border = np.bincount(labels[_frame(labels)], minlength=2) + 0.5
    return int(np.argmax(border / area))


def saliency_background(labels, image, bins=8):
    """Background: the region whose colour histogram (8 bins a channel of the prepared
    image, 1st-99th percentile) is nearer (Bhattacharyya) to the frame pixels'."""
    c = image.reshape(image.shape[0], -1)
    lo, hi = np.percentile(c, [1, 99], axis=1)
    q = ((c - lo[:, None]) / np.maximum(hi - lo, 1e-6)[:, None] * bins).astype(int)
    code = np.zeros(c.shape[1], int)
    for ch in q.clip(0, bins - 1):
        code = code * bins + ch
    n = bins ** c.shape[0]
    flat = labels.ravel()
    frame = np.bincount(code[_frame(labels).ravel()], minlength=n)
    frame = frame / frame.sum()
    close = [np.sqrt(frame * np.bincount(code[flat == k], minlength=n)
                     / max(1, (flat == k).sum())).sum() for k in range(2)]
    return int(np.argmax(close))


EXTRA = {"frame": frame_background, "saliency": saliency_background}


def cache_path(name: str, protocol: str) -> Path:
    return CACHE / f"{name}-{protocol}.npz"


@contextmanager
def what_the_finish_sees():
    """A dict that, while open, holds the last problem's optimiser labels (``labels``,
    the working grid) and prepared image (``image``, channels first, float32): what the
    engine's finish, and so ``region_order``, gets."""
    import napari_iem.engine.pipeline as pipeline

    seen, original = {}, pipeline.finish_problem

    def spy(job, index, b, state, x, *rest, **options):
        seen["labels"] = state.labels[b].cpu().numpy().astype(np.uint8)
        seen["image"] = x[b].cpu().numpy()
        return original(job, index, b, state, x, *rest, **options)

    pipeline.finish_problem = spy
    try:
        yield seen
    finally:
        pipeline.finish_problem = original


def dump(args) -> int:
    """Segment a set once with the optimiser's own numbers and cache what a rule sees."""
    from napari_iem.api import segment

    root = Path(args.set) if Path(args.set).is_dir() else DATA / args.set
    items = load_set(root, args.protocol, args.limit, False)
    out = {"stems": [], "presets": [], "labels": [], "work_labels": [], "images": [],
           "masks": [], "seconds": []}
    start = time.perf_counter()
    with what_the_finish_sees() as seen:
        for n, (stem, img, mask, _) in enumerate(items):
            t = time.perf_counter()
            r = segment(img, 2, preset=args.preset, foreground="init")
            out["seconds"].append(time.perf_counter() - t)
            out["stems"].append(stem)
            out["presets"].append(r.params["preset"])
            out["labels"].append(r.labels.astype(np.uint8))
            out["work_labels"].append(seen["labels"])
            out["images"].append(seen["image"].astype(np.float16))
            out["masks"].append((np.asarray(mask) > 0))
            if (n + 1) % 20 == 0:
                print(f"{n + 1}/{len(items)} {time.perf_counter() - start:.0f} s",
                      file=sys.stderr)
    CACHE.mkdir(parents=True, exist_ok=True)
    path = cache_path(root.name, args.protocol)
    obj = {}
    for k, v in out.items():
        if k in ("stems", "presets", "seconds"):
            obj[k] = np.array(v)
        else:  # one array per image, whatever their shapes
            obj[k] = np.empty(len(v), dtype=object)
            obj[k][:] = v
    np.savez_compressed(path, **obj)
    print(f"{path}: {len(items)} images, {time.perf_counter() - start:.0f} s")
    return 0


def current_rule(preset: str) -> str:
    from napari_iem.engine.presets import get_preset

    return get_preset(preset).foreground


def score(args) -> int:
    """Fixed beside best polarity for every rule on a cached set."""
    from napari_iem.analysis.metrics import evaluate_pairs
    from napari_iem.engine.foreground import region_order

    root = Path(args.set)
    name = root.name if root.is_dir() else args.set
    data = np.load(cache_path(name, args.protocol), allow_pickle=True)
    labels = [np.asarray(x, np.uint8) for x in data["labels"]]
    masks = [np.asarray(x, bool) for x in data["masks"]]
    work, images, presets = data["work_labels"], data["images"], data["presets"]
    # IoU of each polarity, once: a rule only picks one of the two per image.
    _, as_is = evaluate_pairs(labels, masks)
    _, swapped = evaluate_pairs([1 - lab for lab in labels], masks)
    iou = np.array([[a["fixed_iou"], s["fixed_iou"]] for a, s in zip(as_is, swapped)])
    best = iou.max(axis=1)
    rules = args.rules or [*RULES, "preset"]

    def choices(rule):
        """The background label per image (1: the optimiser's numbers swapped), and
        seconds per image."""
        t = time.perf_counter()
        out = []
        for w, im, p in zip(work, images, presets):
            r = current_rule(p) if rule == "preset" else rule
            w = np.asarray(w, np.uint8)
            if r in EXTRA:
                out.append(EXTRA[r](w, np.asarray(im, np.float32)))
            else:
                out.append(int(region_order(w, 2, r)[0]))  # the background label
        return np.array(out), (time.perf_counter() - t) / len(work)

    ref, _ = choices("preset")
    print(f"{name} ({args.protocol}, {len(labels)} images; presets: "
          + ", ".join(f"{p} {int((presets == p).sum())}" for p in np.unique(presets))
          + f"); best polarity {100 * best.mean():.1f}")
    print("| rule | fixed IoU | best IoU | gap | flips vs preset | gain of 5 largest "
          "| ms/image |")
    print("|---|---|---|---|---|---|---|")
    picks = {}
    for rule in rules:
        pick, sec = choices(rule)
        picks[rule] = pick
        fixed = iou[np.arange(len(pick)), pick]
        delta = fixed - iou[np.arange(len(ref)), ref]
        signed = delta[np.argsort(-np.abs(delta))[:5]].sum()
        print(f"| {rule} | {100 * fixed.mean():.1f} | {100 * best.mean():.1f} "
              f"| {100 * (best.mean() - fixed.mean()):.1f} | {int((pick != ref).sum())} "
              f"| {100 * signed / len(pick):+.1f} of {100 * delta.mean():+.1f} "
              f"| {1000 * sec:.2f} |")
    if args.show:
        for rule in rules:
            diff = np.flatnonzero(picks[rule] != ref)
            if not len(diff):
                continue
            gain = iou[diff, picks[rule][diff]] - iou[diff, ref[diff]]
            order = diff[np.argsort(-np.abs(gain))][: args.show]
            print(f"{rule} against preset:", ", ".join(
                f"{data['stems'][i]} {100 * (iou[i, picks[rule][i]] - iou[i, ref[i]]):+.0f}"
                for i in order))
    if args.per_image:
        import csv

        with open(args.per_image, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["stem", "preset", "iou_as_is", "iou_swapped",
                        *[f"swap_{r}" for r in rules]])
            for i, stem in enumerate(data["stems"]):
                w.writerow([stem, presets[i], f"{iou[i, 0]:.4f}", f"{iou[i, 1]:.4f}",
                            *[int(picks[r][i]) for r in rules]])
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    d = sub.add_parser("dump", help="segment a set once (foreground='init') and cache it")
    d.add_argument("--preset", default="default")
    d.add_argument("--limit", type=int)
    d.add_argument("--threads", type=int, help="torch CPU threads (a shared machine)")
    s = sub.add_parser("score", help="score the rules on a cached set")
    s.add_argument("--rules", nargs="*", help=f"rules to score (default: {RULES} "
                   "and 'preset', the current preset's rule)")
    s.add_argument("--show", type=int, default=0, metavar="N",
                   help="list the N images each rule changes most against the preset")
    s.add_argument("--per-image", metavar="CSV", help="per-image polarities and picks")
    for p in (d, s):
        p.add_argument("--set", default="sod",
                       help="data set name under ../shared/data, or a folder path")
        p.add_argument("--protocol", choices=["paper", "full"], default="paper")
    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    return dump(args) if args.step == "dump" else score(args)


if __name__ == "__main__":
    sys.exit(main())
