"""Empty planes stay empty: the "no structure" decision on noise and on real images.

Synthetic mode (the default) segments planes of pure noise (256x256, ``--planes`` per
kind: Gaussian and Poisson at several photon counts, 8- and 16-bit, flat or on a smooth
gradient or vignette) with each preset and applies
:func:`napari_iem.engine.structure.structure_found` to the result, on the image as the
optimiser saw it (the optimiser runs with ``check_structure=False``, so that "IEM
alone" is the optimiser's own result and the decision is applied here); it prints,
per kind and preset, the share of planes with at most 1% of their pixels foreground
before and after the decision.  ``--real SET`` segments a
development set instead (``default`` preset; ``horse`` and ``sod`` under the paper's
protocol, ``nuclei`` at full size) and counts the images called "no structure", with
the IoU each of them had.  ``--faint`` sweeps the contrast of one disc in noise.
``--enlarge F`` makes each noise plane at 1/F of the size and enlarges it F times by
repeating its pixels, as a zoomed screenshot or a binned camera shown at full size is.
From the repository root::

    .venv/bin/python benchmarks/noise_planes.py --planes 100
    .venv/bin/python benchmarks/noise_planes.py --real nuclei --protocol full
    .venv/bin/python benchmarks/noise_planes.py --real horse --every 3
    .venv/bin/python benchmarks/noise_planes.py --faint
    .venv/bin/python benchmarks/noise_planes.py --planes 20 --enlarge 2
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields

import numpy as np
import torch

from evaluate import DATA, load_set

SIZE = 256


def noise_kinds() -> dict:
    """Kind name -> function(rng) making one noise plane."""
    yy, xx = np.mgrid[:SIZE, :SIZE] / (SIZE - 1) - 0.5

    def ramp(rng):  # a linear gradient in a random direction, -0.5..0.5 across
        a = rng.uniform(0, 2 * np.pi)
        g = np.cos(a) * xx + np.sin(a) * yy
        return (g - g.min()) / np.ptp(g) - 0.5

    vignette = np.exp(-(xx**2 + yy**2) / (2 * 0.35**2))
    kinds = {
        "Gaussian, 8-bit": lambda r: r.normal(128, 20, (SIZE, SIZE)),
        "Gaussian, 16-bit": lambda r: r.normal(1000, 50, (SIZE, SIZE)),
        "Gaussian + gradient (6 SD), 16-bit": lambda r: r.normal(
            1000 + 300 * ramp(r), 50),
    }
    for photons in (1, 5, 20, 100):
        kinds[f"Poisson {photons}, 16-bit"] = lambda r, p=photons: r.poisson(
            p, (SIZE, SIZE))
    kinds["Poisson 20, 8-bit"] = lambda r: r.poisson(20, (SIZE, SIZE))
    kinds["Poisson 20 + gradient (10..30), 8-bit"] = lambda r: r.poisson(
        20 * (1 + ramp(r)))
    kinds["Poisson 100 + vignette (60..100), 16-bit"] = lambda r: r.poisson(
        100 * (0.6 + 0.4 * vignette))
    return kinds


def as_dtype(kind: str, plane: np.ndarray) -> np.ndarray:
    dtype = np.uint8 if "8-bit" in kind else np.uint16
    return plane.clip(0, np.iinfo(dtype).max).round().astype(dtype)


def enlarged(plane: np.ndarray, factor: int) -> np.ndarray:
    """Every ``factor``-th pixel of ``plane`` repeated ``factor`` times on both axes:
    a plane of the same size whose noise comes in blocks (``factor`` 1: ``plane``)."""
    small = plane[::factor, ::factor]
    return np.repeat(np.repeat(small, factor, 0), factor, 1)[:plane.shape[0], :plane.shape[1]]


def decide(images, results):
    """``structure_found`` on each result, on the image at the working resolution."""
    from napari_iem.engine.presets import IEMParams
    from napari_iem.engine.preprocess import prepare_image, resize_labels
    from napari_iem.engine.structure import structure_found

    names = {f.name for f in fields(IEMParams)}
    found, ratios = [], []
    for image, r in zip(images, results):
        params = IEMParams(**{k: v for k, v in r.params.items() if k in names})
        x = prepare_image(image, params).data
        labels = resize_labels(r.labels, x.shape[1:]).astype(np.int64)
        ok, stats = structure_found(torch.from_numpy(x[None]),
                                    torch.from_numpy(labels[None]), r.regions, params)
        found.append(bool(ok[0]))
        ratios.append(stats["ratio"][0])
    return np.array(found), np.array(ratios)


def run_noise(args) -> None:
    from napari_iem.api import segment_batch

    print(f"{args.planes} planes of {SIZE}x{SIZE} per kind (enlarged {args.enlarge}x); "
          "'ok': at most 1% of pixels foreground; ratio: contrast / threshold "
          "(structure when > 1)\n")
    print("| kind | preset (chosen) | ok, IEM alone | ok, with the decision "
          "| called structure | median ratio | max ratio |")
    print("|---|---|---|---|---|---|---|")
    for i, (kind, make) in enumerate(noise_kinds().items()):
        rng = np.random.default_rng(1000 + i)
        planes = [enlarged(as_dtype(kind, make(rng)), args.enlarge)
                  for _ in range(args.planes)]
        done = {}  # "default" picks a preset for all: its results serve that one too
        for preset in args.presets:
            results = done.get(preset) or segment_batch(
                planes, preset=preset, device=args.device, check_structure=False)
            chosen = sorted({r.params["preset"] for r in results})
            done.update({preset: results, **({chosen[0]: results} if len(chosen) == 1
                                              else {})})
            fg = np.array([np.mean(r.labels > 0) for r in results])
            found, ratios = decide(planes, results)
            ok_before = np.mean(fg <= 0.01)
            ok_after = np.mean(np.where(found, fg, 0) <= 0.01)
            print(f"| {kind} | {preset} ({', '.join(chosen)}) | {100 * ok_before:.0f}% "
                  f"| {100 * ok_after:.0f}% | {found.sum()}/{len(found)} "
                  f"| {np.median(ratios):.2f} | {ratios.max():.2f} |", flush=True)


def run_real(args) -> None:
    from napari_iem.analysis.metrics import binary_scores
    from napari_iem.api import segment

    items = load_set(DATA / args.real, args.protocol, None, False)[:: args.every]
    images, results, ious = [], [], []
    for _, image, mask, _ in items:
        r = segment(image, preset="default", device=args.device, check_structure=False)
        images.append(image)
        results.append(r)
        ious.append(binary_scores(r.labels, mask)["fixed_iou"])
    found, ratios = decide(images, results)
    print(f"{args.real}, protocol {args.protocol}, {len(items)} images (every "
          f"{args.every}), preset default: {np.sum(~found)} called 'no structure'; "
          f"ratio min {ratios.min():.2f}, 5th percentile {np.percentile(ratios, 5):.2f}, "
          f"median {np.median(ratios):.2f}")
    for (stem, *_), ok, ratio, iou, r in zip(items, found, ratios, ious, results):
        if not ok or ratio < 2:
            print(f"  {stem}: ratio {ratio:.2f}, fixed IoU {100 * iou:.1f}, preset "
                  f"{r.params['preset']}{'' if ok else ', NO STRUCTURE'}")


def run_faint(args) -> None:
    from napari_iem.api import segment_batch

    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = (yy - 120) ** 2 + (xx - 140) ** 2 < 30**2
    print(f"a disc of radius 30 off the centre of {SIZE}x{SIZE} Gaussian noise (16-bit), "
          f"{args.planes} planes per contrast, contrast in noise SDs\n")
    print("| contrast | preset (chosen) | IEM finds it (IoU > 0.5) | called structure |")
    print("|---|---|---|---|")
    for contrast in (0.5, 1.0, 1.5, 2.0, 3.0):
        rng = np.random.default_rng(int(contrast * 10))
        planes = [as_dtype("16-bit", rng.normal(1000, 50, disc.shape) + 50 * contrast * disc)
                  for _ in range(args.planes)]
        for preset in args.presets:
            results = segment_batch(planes, preset=preset, device=args.device,
                                    check_structure=False)
            fg = [r.labels > 0 for r in results]
            hit = np.mean([(f & disc).sum() / (f | disc).sum() > 0.5 for f in fg])
            found, _ = decide(planes, results)
            chosen = sorted({r.params["preset"] for r in results})
            print(f"| {contrast} | {preset} ({', '.join(chosen)}) | {100 * hit:.0f}% "
                  f"| {100 * found.mean():.0f}% |", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--planes", type=int, default=100, help="planes per kind")
    parser.add_argument("--presets", nargs="+", default=["default", "microscopy", "photo"])
    parser.add_argument("--real", help="a development set instead: horse, sod, nuclei")
    parser.add_argument("--protocol", choices=["paper", "full"], default="paper")
    parser.add_argument("--every", type=int, default=1, help="every N-th image (--real)")
    parser.add_argument("--faint", action="store_true", help="the faint-disc sweep")
    parser.add_argument("--enlarge", type=int, default=1, metavar="F",
                        help="noise planes enlarged F times by repeating pixels")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.real:
        run_real(args)
    elif args.faint:
        run_faint(args)
    else:
        run_noise(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
