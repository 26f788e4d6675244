"""Choose among several IEM optima by their agreement: does consensus pick the object?

A partition that many starts reach is, in clustering, a stable one, and stability is a
common selection signal when there is no ground truth.  This script measures it for
issue 16's cluttered photos.  Per image it collects the K = 2 optima of ``default`` from
up to six starts: the centred square (the default), the two-colour k-means start, the
frame-contrast start of :func:`starts_and_merges.frame_contrast_start`, and each region
of the K = 3 result against the other two.  Each optimum's foreground comes from the
preset's own rule.  Then it keeps

* the default's optimum;
* the medoid: the optimum with the largest summed agreement with the others
  (agreement: the IoU of two partitions, the better of the two pairings, so a
  polarity does not count);
* a vote: the optima's foregrounds, each paired to the medoid's, by majority per pixel;
* the oracle: the optimum with the best fixed IoU.

With ``--superpixels`` it measures instead moves larger than one pixel, for the
straight fronts that greedy flips leave in flat areas (a boundary that stopped in the
middle of a lake or a saucer, often an edge of the start).  The labels are projected
on Felzenszwalb segments (scikit-image; each segment takes its majority label) and
the optimiser runs again from there ("projected"); or the centred square is so
projected before the run ("snapped square"); each also kept only where its final J
is above the default's ("J-accept").

Fixed-polarity IoU (the preset's foreground), in %, and the best polarity of the oracle::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/consensus_starts.py --set sod
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/consensus_starts.py --set horse
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/consensus_starts.py --set sod --superpixels
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/consensus_starts.py --set horse \
        --superpixels --protocol full
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import DATA, load_set  # noqa: E402
from starts_and_merges import frame_contrast_start, iou  # noqa: E402


def optima(segment, image: np.ndarray) -> list[np.ndarray]:
    """The foregrounds of ``default``'s K = 2 optima from each start (the square first)."""
    starts: list = ["square", "kmeans", frame_contrast_start(image)]
    three = segment(image, 3, maps=False, foreground="init").labels
    starts += [(three == k).astype(np.int64) for k in range(3)]
    out = []
    for start in starts:
        if start is None or (isinstance(start, np.ndarray)
                             and not 0.02 < start.mean() < 0.98):
            continue  # no frame contrast, or a K = 3 region too small to start from
        out.append(segment(image, 2, maps=False, init=start).labels > 0)
    return out


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two partitions, the better pairing of their sides."""
    return max(iou(a, b), iou(a, ~b))


def medoid(found: list[np.ndarray]) -> int:
    """Index of the optimum with the largest summed agreement with the others."""
    total = [sum(agreement(a, b) for j, b in enumerate(found) if j != i)
             for i, a in enumerate(found)]
    return int(np.argmax(total))


def vote(found: list[np.ndarray], ref: np.ndarray) -> np.ndarray:
    """Majority per pixel of the foregrounds, each paired to ``ref``'s sides."""
    paired = [fg if iou(fg, ref) >= iou(~fg, ref) else ~fg for fg in found]
    return np.mean(paired, axis=0) > 0.5


def project(labels: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """``labels`` > 0 by majority within each segment: one label per segment."""
    share = (np.bincount(segments.ravel(), weights=(labels > 0).ravel())
             / np.bincount(segments.ravel()))
    return (share > 0.5)[segments].astype(np.int64)


def superpixel_scores(segment, items, scales=(100, 300)) -> dict[str, list[float]]:
    """Fixed IoU per image of the default and of each superpixel move of the docstring."""
    from skimage.segmentation import felzenszwalb

    scores: dict[str, list[float]] = {}
    for _, image, mask, _ in items:
        image, gt = (image[..., :3] if image.ndim == 3 else image), mask > 0
        base = segment(image, 2, maps=False)
        h, w = base.labels.shape
        square = np.zeros((h, w), np.int64)
        square[h // 5:h - h // 5, w // 5:w - w // 5] = 1
        scores.setdefault("default", []).append(iou(base.labels > 0, gt))
        for scale in scales:
            segments = felzenszwalb(image, scale=scale, sigma=0.8, min_size=max(4, h * w // 1000),
                                    channel_axis=-1 if image.ndim == 3 else None)
            for move, labels in (("projected", base.labels), ("snapped square", square)):
                start = project(labels, segments)
                run = (segment(image, 2, maps=False, init=start)
                       if 0 < start.sum() < start.size else base)
                kept = run if run.objective[-1] > base.objective[-1] else base
                for key, result in ((f"{move}, scale {scale}", run),
                                    (f"{move}, scale {scale}, J-accept", kept)):
                    scores.setdefault(key, []).append(iou(result.labels > 0, gt))
    return scores


def main(argv=None) -> int:
    from napari_iem import segment

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", default="sod")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--protocol", choices=("paper", "full"), default="paper")
    ap.add_argument("--superpixels", action="store_true",
                    help="measure superpixel moves instead")
    args = ap.parse_args(argv)
    items = load_set(DATA / args.set, args.protocol, args.limit, False)
    if args.superpixels:
        print(f"{args.set}, {len(items)} images, {args.protocol} protocol")
        print("| kept | fixed IoU |\n|---|---|")
        for key, values in superpixel_scores(segment, items).items():
            print(f"| {key} | {100 * np.mean(values):.1f} |")
        return 0
    scores: dict[str, list[float]] = {k: [] for k in (
        "default (the square start's optimum)", "medoid of the optima",
        "vote of the optima", "oracle over the optima", "oracle, best polarity")}
    counts = []
    for _, image, mask, _ in items:
        found, gt = optima(segment, image), mask > 0
        counts.append(len(found))
        m = medoid(found)
        for key, value in zip(scores, (
                iou(found[0], gt), iou(found[m], gt), iou(vote(found, found[m]), gt),
                max(iou(fg, gt) for fg in found),
                max(max(iou(fg, gt), iou(~fg, gt)) for fg in found))):
            scores[key].append(value)
    print(f"{args.set}, {len(items)} images, {args.protocol} protocol, "
          f"{np.mean(counts):.1f} optima an image")
    print("| kept | fixed IoU |\n|---|---|")
    for key, values in scores.items():
        print(f"| {key} | {100 * np.mean(values):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
