"""Other texture features and start sizes for the photo preset, at the paper's 128 px.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/photo_variants.py --set sod \
        --features base,weight0.5,weight1.5,weight2,colour-std,std3,two-scales,wide,context,gradient
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/photo_variants.py --set sod \
        --squares 5,8,4,3,10
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/photo_variants.py --set sod \
        --post fill,largest,fill+largest,pieces10,walker3,walker6 \
        --smooth tv0.05,tv0.1,felzenszwalb150,slic400

Issue 16 asks whether more than one feature per pixel, or a start that assumes less
about the object, lifts the cluttered photos.  Each variant replaces one piece of
``default`` for the whole run and segments the set by the paper's protocol:

* ``--features``: the inpainter's extra channels in place of the texture channel of
  :mod:`napari_iem.engine.texture` (``base``: that channel, the local standard
  deviation of L* over 11 px per 128; ``weightW``: it times W; ``colour-std``: the
  root of the summed variances of L*, a*, b*; ``std3``: one standard deviation
  channel per colour channel; ``two-scales``: boxes of 5 and 21 px; ``wide``: base
  plus a 31-px box; ``context``: base plus the box means of L*a*b*; ``gradient``: base
  plus the box mean of the L* gradient's magnitude).  Each channel is stretched as
  the engine stretches its own (1st..99th percentile to -1..1).
* ``--squares D,...``: the start square ``[n//D, n - n//D)`` on every axis (the paper:
  D = 5), and per image the choice among them by the largest final J, and the oracle.
* ``--post``: ``default``'s foreground cleaned afterwards (``fill``: holes filled;
  ``largest``: its largest connected piece; ``pieces10``: the pieces of at least a
  tenth of the largest; ``walkerR``: scikit-image's random walker on L*a*b* from the
  foreground and background each eroded by R px, for edges that stopped short).
* ``--smooth``: the photo smoothed with edges kept before ``default`` sees it
  (``tvW``: total variation, weight W; ``felzenszwalbS`` / ``slicN``: each superpixel
  its mean colour), back to 8 bits so that ``default`` still reads a photo.

Prints fixed-polarity and best-polarity IoU (%) per variant, and seconds per image.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def stretch(c):
    """Each image's 1st..99th percentile to -1..1, clipped (the engine's stretch)."""
    import torch

    q = torch.quantile(c.flatten(1), torch.tensor([0.01, 0.99], dtype=c.dtype), dim=1)
    view = (-1,) + (1,) * (c.ndim - 1)
    centre = ((q[0] + q[1]) / 2).view(view)
    span = ((q[1] - q[0]) / 2).clamp_min(1e-6).view(view)
    return ((c - centre) / span).clamp_(-1, 1)


def feature_variant(name: str):
    """A stand-in for ``engine.texture.with_texture``: ``x`` with the variant's channels."""
    import torch

    from napari_iem.engine.texture import box_mean

    def std(ch, width, nd):
        mean = box_mean(ch, width, nd)
        return (box_mean(ch * ch, width, nd) - mean * mean).clamp_min_(0).sqrt_().to(ch.dtype)

    def channels(x, width_of, nd):
        lum, box = x[:, :1], width_of(11)
        base = [stretch(std(lum, box, nd))]
        if name == "base":
            return base
        if name.startswith("weight"):
            return [base[0] * float(name[len("weight"):])]
        if name == "colour-std":
            return [stretch(sum(std(x[:, i:i + 1], box, nd) ** 2
                                for i in range(x.shape[1])).sqrt())]
        if name == "std3":
            return [stretch(std(x[:, i:i + 1], box, nd)) for i in range(x.shape[1])]
        if name == "two-scales":
            return [stretch(std(lum, width_of(5), nd)), stretch(std(lum, width_of(21), nd))]
        if name == "wide":
            return base + [stretch(std(lum, width_of(31), nd))]
        if name == "context":
            return base + [stretch(box_mean(x[:, i:i + 1], box, nd).to(x.dtype))
                           for i in range(x.shape[1])]
        if name == "gradient":
            grads = torch.gradient(lum, dim=tuple(range(2, x.ndim)))
            magnitude = torch.sqrt(sum(g * g for g in grads))
            return base + [stretch(box_mean(magnitude, box, nd).to(x.dtype))]
        raise SystemExit(f"photo_variants.py: unknown feature variant {name!r}")

    def with_channels(x, window):
        if not window:  # finer levels and the refinement: colour only, as in the engine
            return x
        def width_of(w):
            return max(3, round(w * max(x.shape[2:]) / 128) | 1)
        return torch.cat([x, *channels(x, width_of, x.ndim - 2)], 1)

    return with_channels


def square_of(divisor: int):
    """A stand-in for ``engine.optimize.square_init``: the box ``[n//D, n - n//D)``."""
    import torch

    def square(shape, batch, device):
        labels = torch.zeros((batch, *shape), dtype=torch.int64, device=device)
        labels[(slice(None), *(slice(n // divisor, n - n // divisor) for n in shape))] = 1
        return labels

    return square


def colour(image: np.ndarray) -> np.ndarray:
    """``image`` as three colour channels (a grey photo repeated)."""
    return np.dstack([image] * 3) if image.ndim == 2 else image[..., :3]


def post_process(name: str, labels: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """``labels``' foreground (label > 0) cleaned by the ``--post`` variant ``name``."""
    from scipy import ndimage as ndi

    fg = labels > 0
    if name in ("fill", "fill+largest") or name.startswith("pieces") or name == "largest":
        pieces, count = ndi.label(fg)
        if count > 1 and name != "fill":
            sizes = np.bincount(pieces.ravel())[1:]
            share = float(name[len("pieces"):]) / 100 if name.startswith("pieces") else 1.0
            fg = np.isin(pieces, 1 + np.flatnonzero(sizes >= share * sizes.max()))
        return ndi.binary_fill_holes(fg) if name.startswith("fill") else fg
    if name.startswith("walker"):
        from skimage.color import rgb2lab
        from skimage.segmentation import random_walker

        depth = int(name[len("walker"):])
        seeds = np.zeros(fg.shape, np.int32)
        seeds[ndi.binary_erosion(~fg, iterations=depth, border_value=1)] = 1
        seeds[ndi.binary_erosion(fg, iterations=depth)] = 2
        if not (seeds == 1).any() or not (seeds == 2).any():
            return fg
        lab = rgb2lab(colour(rgb))
        lab = (lab - lab.mean((0, 1))) / (lab.std((0, 1)) + 1e-6)
        return random_walker(lab, seeds, beta=130, channel_axis=-1, mode="cg_j") == 2
    raise SystemExit(f"photo_variants.py: unknown post-processing {name!r}")


def smoothed(name: str, rgb: np.ndarray) -> np.ndarray:
    """The photo smoothed by the ``--smooth`` variant ``name``, as 8-bit RGB."""
    from skimage.restoration import denoise_tv_chambolle
    from skimage.segmentation import felzenszwalb, slic
    from skimage.util import img_as_float, img_as_ubyte

    image = img_as_float(colour(rgb))
    if name.startswith("tv"):
        out = denoise_tv_chambolle(image, weight=float(name[2:]), channel_axis=-1)
    elif name.startswith(("felzenszwalb", "slic")):
        if name.startswith("slic"):
            segments = slic(image, n_segments=int(name[4:]), compactness=10, start_label=0)
        else:
            segments = felzenszwalb(image, scale=float(name[12:]), sigma=0.5, min_size=20)
        count = np.bincount(segments.ravel())
        out = np.stack([(np.bincount(segments.ravel(), image[..., c].ravel())
                         / np.maximum(count, 1))[segments] for c in range(3)], -1)
    else:
        raise SystemExit(f"photo_variants.py: unknown smoothing {name!r}")
    return img_as_ubyte(np.clip(out, 0, 1))


def run(items, **kwargs):
    """Segment every image with ``default``; (results, seconds per image)."""
    from napari_iem import segment

    start = time.perf_counter()
    results = [segment(img, 2, preset="default", maps=False, **kwargs)
               for _, img, _, _ in items]
    return results, (time.perf_counter() - start) / len(items)


def main(argv=None) -> None:
    import torch

    from evaluate import DATA, load_set
    import napari_iem.engine.optimize as optimize
    from napari_iem.analysis.metrics import evaluate_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="sod")
    parser.add_argument("--features", default="", help="comma-separated variant names")
    parser.add_argument("--squares", default="", help="comma-separated divisors D")
    parser.add_argument("--post", default="", help="comma-separated post-processings")
    parser.add_argument("--smooth", default="", help="comma-separated smoothings")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    items = load_set(DATA / args.set, "paper", None, False)
    masks = [m for _, _, m, _ in items]
    keep_features, keep_square = optimize.with_texture, optimize.square_init

    def report(label, labels, seconds=None):
        mean, per = evaluate_pairs(labels, masks)
        tail = "" if seconds is None else f"  {seconds:.3f} s/image"
        print(f"{args.set:6} {label:24} fixed {100 * mean['fixed_iou']:5.1f}  "
              f"best {100 * mean['iou']:5.1f}{tail}", flush=True)
        return np.array([p["fixed_iou"] for p in per]), np.array([p["iou"] for p in per])

    try:
        for name in filter(None, args.features.split(",")):
            optimize.with_texture = feature_variant(name)
            results, seconds = run(items)
            report(f"features {name}", [r.labels for r in results], seconds)
        optimize.with_texture = keep_features
        runs = []
        for divisor in [int(d) for d in filter(None, args.squares.split(","))]:
            optimize.square_init = square_of(divisor)
            results, seconds = run(items)
            runs.append((results, *report(f"square 1/{divisor}",
                                          [r.labels for r in results], seconds)))
    finally:
        optimize.with_texture, optimize.square_init = keep_features, keep_square
    if args.post:
        results, seconds = run(items)
        report("default", [r.labels for r in results], seconds)
        for name in args.post.split(","):
            report(f"post {name}", [post_process(name, r.labels, img).astype(np.int32)
                                    for r, (_, img, _, _) in zip(results, items)])
    for name in filter(None, args.smooth.split(",")):
        smooth_items = [(s, smoothed(name, img), m, x) for s, img, m, x in items]
        results, seconds = run(smooth_items)
        report(f"smooth {name}", [r.labels for r in results], seconds)
    if len(runs) > 1:
        final_j = np.array([[r.objective[-1] if r.objective else -np.inf for r in res]
                            for res, _, _ in runs])
        pick = final_j.argmax(0)
        report("squares, largest J", [runs[k][0][i].labels for i, k in enumerate(pick)])
        fixed = np.array([f for _, f, _ in runs])
        print(f"{args.set:6} {'squares, oracle':24} fixed {100 * fixed.max(0).mean():5.1f}")


if __name__ == "__main__":
    main()
