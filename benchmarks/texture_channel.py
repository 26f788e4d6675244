"""Does a texture channel help the inpainter?  Colour plus local contrast, at 128 px.

    OMP_NUM_THREADS=1 python benchmarks/texture_channel.py --set sod [--feature std]
                                                           [--window 7]

Issue 16 asks for more than one feature per pixel.  This measures the idea before it is
built into the engine: each development photo is taken by the paper's protocol (128x128),
turned into CIE L*a*b* (each channel stretched by its 1st-99th percentiles, as the photo
preset does), and, unless ``--feature lab``, given a fourth channel: the local standard
deviation of L* over a ``window`` x ``window`` box (``std``) or its Gaussian gradient
magnitude (``grad``, sigma ``window / 5``).  The photo preset then segments the four
channels as they are (``colour="rgb"``, each channel mapped min..max to -1..1).  Prints
the fixed-polarity and best-polarity IoU (%); ``--feature lab`` is the same pipeline
without the fourth channel, the baseline to compare with.
"""
from __future__ import annotations

import argparse

import numpy as np


def features(rgb: np.ndarray, feature: str, window: int) -> np.ndarray:
    """``(H, W, 3 or 4)`` float32: stretched L*a*b*, and the texture channel."""
    from scipy import ndimage as ndi
    from skimage.color import rgb2lab

    def stretch(c):
        lo, hi = np.percentile(c, [1, 99])
        return np.clip((c - (lo + hi) / 2) / (max(hi - lo, 1e-6) / 2), -1.5, 1.5)

    lab = rgb2lab(rgb[..., :3])
    chans = [stretch(lab[..., i]) for i in range(3)]
    lum = lab[..., 0]
    if feature == "std":
        mean = ndi.uniform_filter(lum, window)
        chans.append(stretch(np.sqrt(np.maximum(ndi.uniform_filter(lum * lum, window)
                                                - mean * mean, 0))))
    elif feature == "grad":
        chans.append(stretch(ndi.gaussian_gradient_magnitude(lum, window / 5)))
    return np.stack(chans, -1).astype(np.float32)


def main(argv=None) -> None:
    import torch

    from evaluate import DATA, load_set
    from napari_iem import segment
    from napari_iem.analysis.metrics import evaluate_pairs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="sod")
    parser.add_argument("--feature", choices=["lab", "std", "grad"], default="std")
    parser.add_argument("--window", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    items = load_set(DATA / args.set, "paper", None, False)
    preds = [segment(features(img, args.feature, args.window), 2, preset="photo",
                     colour="rgb", scaling="percentile", percentile_low=0.0,
                     percentile_high=100.0, channel_axis=-1, maps=False).labels
             for _, img, _, _ in items]
    mean, _ = evaluate_pairs(preds, [m for _, _, m, _ in items])
    print(f"{args.set} {args.feature} window {args.window}: fixed IoU "
          f"{100 * mean['fixed_iou']:.1f}, best polarity {100 * mean['iou']:.1f}")


if __name__ == "__main__":
    main()
