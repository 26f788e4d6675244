"""Is the partition real?  "Nothing here" must give nothing, not a split of the noise.

IEM always returns a partition: on a plane of pure noise it splits the noise.  After the
optimisation, :func:`structure_found` asks whether the regions differ by more than noise
can make any two regions differ.

The statistic is the contrast of each region against the largest one, after a smooth
background is removed and in units of the noise:

* the noise is estimated from the image itself, robustly, from the differences of
  neighbouring pixels (their median absolute value; Rousseeuw & Croux 1993): smooth
  structure and a background gradient cancel in a difference, edges are a minority
  that the median ignores, and the estimate scales with the image, so the stretch of a
  noise plane to the full [-1, 1] range (:mod:`napari_iem.engine.preprocess`) changes
  nothing.  An image enlarged by repeating pixels (:func:`repetition`) is measured on
  one pixel per block, and each block counts as one sample.  Channels are combined by
  the Mahalanobis norm under the noise's robust correlation (Gnanadesikan &
  Kettenring 1972), so correlated colour noise is not counted once per channel;
* the contrast is the coefficient of the region's indicator in a least-squares fit of
  the image by a smooth background (a polynomial of degree 4) plus that indicator: a
  region that only follows a gradient or a vignette has none of its own;
* the threshold is what the same optimisation reaches on noise.  Among all splits of
  white Gaussian noise into shares ``f`` and ``1 - f`` of the pixels, the largest
  expected difference of the two means, in noise standard deviations, is that of the
  split by value (the top ``f`` against the rest): ``B(f) = phi(z) / (f (1 - f))``,
  with ``z`` the standard normal quantile at ``1 - f`` and ``phi`` its density (the
  mean of a truncated normal; Johnson, Kotz & Balakrishnan 1994, ch. 13).  A
  selection whose score correlates ``rho`` with each pixel's own value reaches
  ``rho B(f)``.  The optimiser's ``rho`` is measured once per parameters
  (:func:`null_selection`): the same optimisation, with the same parameters, on a few
  planes of white Gaussian noise scaled as the percentile rule scales a noise plane
  (about 0.25 for the microscopy preset, whose smoothing keeps it far from the
  pixel-by-pixel split, and 0.04 for the photo preset, whose square barely moves in
  noise).  A region is structure when its contrast exceeds
  ``MARGIN rho B(f) + Z se``: twice what noise reaches at its share, plus five
  standard errors of a mean difference of regions that size.

A noise plane's regions have a contrast of about half the threshold (microscopy) and
less (photo); a disc of 1.5 noise SDs covering 4% of the plane is above it
(``benchmarks/noise_planes.py``).  The test costs one least-squares fit and a few
medians on at most :data:`SAMPLE_MAX` pixels (a regular grid of a larger image) per
image, plus the null once per parameters (a few noise planes of 128x128, or 32x32x32
for volumes, of one channel: the Mahalanobis norm makes the selection of C noise
channels about that of one).  It assumes the noise is white: noise correlated over
neighbouring pixels (an image downscaled with anti-aliasing, a JPEG) is underestimated
by pixel differences, and its partitions look more real than they are.

References
----------
Savarese, Kim, Maire, Shakhnarovich & McAllester, "Information-theoretic segmentation
by inpainting error maximization", CVPR 2021.
Rousseeuw & Croux, "Alternatives to the median absolute deviation", JASA 88, 1993.
Gnanadesikan & Kettenring, "Robust estimates, residuals, and outlier detection with
multiresponse data", Biometrics 28, 1972.
Johnson, Kotz & Balakrishnan, "Continuous univariate distributions", vol. 1, 1994.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import torch

from .inpaint import per_axis
from .optimize import optimize

#: Pixels sampled at most for the noise estimate and the fit (a regular grid beyond).
SAMPLE_MAX = 2**16
#: MAD of a normal variable, in standard deviations.
MAD_NORMAL = 0.6744897501960817
#: Total degree of the polynomial background (4: a vignette, not only a gradient).
DEGREE = 4
#: Noise planes of the null, their largest side per spatial rank, and their seed.
NULL_PLANES = 4
NULL_SIDE = {2: 128, 3: 32}
NULL_SEED = 0
#: Safety factor on the null's selection, and standard errors added for sampling.
MARGIN = 2.0
Z = 5.0
#: Changes along an axis needed before its pixels can be called repeated.
MIN_CHANGES = 16
#: Nulls measured in this process, by :func:`null_key` and device.
_NULLS: dict = {}
#: Nulls measured ahead of time on the CPU for the presets' parameters
#: (``scripts/null_table.py``), so that a process's first run does not spend a second
#: measuring one; any other parameters are measured when first needed.
TABLE = Path(__file__).with_name("null_selection.json")
_TABLE: dict | None = None


def structure_found(x: torch.Tensor, labels: torch.Tensor, regions: int,
                    params) -> tuple[torch.Tensor, dict]:
    """Whether each image's partition differs from what the same optimisation finds in
    noise.

    Parameters
    ----------
    x : Tensor, shape (B, C, *S), float
        The images as the optimiser saw them (scaled to [-1, 1], working resolution).
    labels : Tensor, shape (B, *S), int
        The final labels, 0..K-1.
    regions : int
        K.
    params : IEMParams
        The parameters the optimiser ran with (on the working grid: per-axis ``sigma``
        as it used them); they define the noise null (see the module doc).

    Returns
    -------
    found : Tensor, shape (B,), bool
        True where some region's contrast against the largest region exceeds the noise
        threshold at that region's share and size (see the module doc).
    stats : dict
        Per image, lists of floats: ``"contrast"`` (of the region with the largest
        contrast / threshold, in noise standard deviations), ``"threshold"`` (its
        threshold), ``"ratio"`` (contrast / threshold: structure when > 1), ``"noise"``
        (the noise standard deviation of each channel on the [-1, 1] scale),
        ``"null_selection"``: the selection strength measured on noise (enlarged like
        the image, :func:`repetition`), and ``"repetition"``: the image's factors.
    """
    null_shape = tuple(min(n, NULL_SIDE[x.ndim - 2]) for n in x.shape[2:])
    out = {"contrast": [], "threshold": [], "ratio": [], "noise": [],
           "null_selection": [], "repetition": []}
    for b in range(x.shape[0]):
        image, lab = _for_statistics(x[b], labels[b])
        repeat = repetition(image)
        rho = null_selection(params, regions, null_shape, str(x.device), repeat)
        stats = _one_image(image, lab, regions, rho, repeat)
        for key in out:
            out[key].append({"null_selection": rho, "repetition": list(repeat)}.get(
                key, stats.get(key)))
    found = torch.tensor([r > 1 for r in out["ratio"]], dtype=torch.bool)
    return found, out


def null_selection(params, regions: int, shape: tuple[int, ...],
                   device: str = "cpu", repeat: tuple[int, ...] | None = None) -> float:
    """How strongly the optimiser run with ``params`` for ``regions`` regions selects
    noise: the largest contrast / :func:`noise_bound` of a region, over
    :data:`NULL_PLANES` planes of white Gaussian noise of ``shape`` scaled as the
    percentile rule scales a noise plane, its pixels repeated ``repeat`` times along
    each axis as the image's are (an enlarged image gives the optimiser fewer, larger
    grains of noise to follow).  Taken from :data:`TABLE` when it holds these
    parameters (a statistic of noise: the CPU's value serves every device), else
    measured once per process, parameters, shape and device."""
    repeat = tuple(repeat or (1,) * len(shape))
    key = null_key(params, regions, shape, repeat)
    if key in _known():
        return _known()[key]
    if (key, device) not in _NULLS:
        _NULLS[key, device] = _measure_null(params, regions, tuple(shape), device, repeat)
    return _NULLS[key, device]


def null_key(params, regions: int, shape, repeat=None) -> str:
    """What a null depends on: the parameters the optimiser and the noise scaling read
    (not the preset's name, colour space or working size), K, the noise's shape and
    its pixels' repetition."""
    sigma = per_axis(params.sigma, len(shape))
    key = {
        "sigma": [round(float(v), 6) for v in sigma], "kernel_size": params.kernel_size,
        "reps": params.reps, "lam": params.lam, "init": params.init,
        "max_iter": params.max_iter, "smooth_threshold": params.smooth_threshold,
        "percentiles": [params.percentile_low, params.percentile_high],
        "regions": int(regions), "shape": [int(n) for n in shape],
    }
    if params.texture:  # the optimiser's extra channel (off: the keys as they were)
        key["texture"] = params.texture
    if params.smooth_border != "zero":  # the smoothing at the border (likewise)
        key["smooth_border"] = params.smooth_border
    if repeat and any(r > 1 for r in repeat):  # an enlarged image (likewise)
        key["repeat"] = [int(r) for r in repeat]
    return json.dumps(key, sort_keys=True)


def _known() -> dict:
    global _TABLE
    if _TABLE is None:
        _TABLE = json.loads(TABLE.read_text(encoding="utf-8")) if TABLE.is_file() else {}
    return _TABLE


def _measure_null(params, regions, shape, device, repeat=None) -> float:
    repeat = tuple(repeat or (1,) * len(shape))
    gen = torch.Generator().manual_seed(NULL_SEED)
    grains = [-(-n // r) for n, r in zip(shape, repeat)]
    noise = torch.randn((NULL_PLANES, 1, *grains), generator=gen, dtype=torch.float64)
    for d, (n, r) in enumerate(zip(shape, repeat)):  # each grain r pixels wide
        noise = noise.repeat_interleave(r, dim=d + 2).narrow(d + 2, 0, n)
    flat = noise.flatten(1)
    q = torch.tensor([params.percentile_low, params.percentile_high],
                     dtype=torch.float64) / 100
    low, high = torch.quantile(flat, q, dim=1).reshape(2, -1, *[1] * (noise.ndim - 1))
    x = ((noise - low) / (high - low) * 2 - 1).clamp(-1, 1).float().to(device)
    run = optimize(x, regions, params)
    try:
        while True:
            next(run)
    except StopIteration as stop:
        labels = stop.value.labels
    return max(_one_image(*_for_statistics(x[b], labels[b]), regions, 0.0,
                          repeat)["selection"] for b in range(NULL_PLANES))


def _for_statistics(x: torch.Tensor, labels: torch.Tensor):
    """An image and its labels where the statistics can be taken in float64: on their
    own device, or on the CPU from Apple's MPS, which has no float64.  The image stays
    in its own dtype: only the pixels :func:`_grid` samples (and their neighbours) are
    widened, which gives the same numbers as widening it all (a 2048x2048 photo: 3 ms
    instead of 120)."""
    if x.device.type == "mps":
        x, labels = x.cpu(), labels.cpu()
    return x, labels


def noise_bound(f: float) -> float:
    """Largest expected mean difference (noise SDs) of a split of white Gaussian noise
    into shares ``f`` and ``1 - f``: the split by value, ``phi(z) / (f (1 - f))``."""
    f = min(max(f, 1e-12), 0.5)
    z = math.sqrt(2) * torch.special.erfinv(torch.tensor(1 - 2 * f, dtype=torch.float64))
    density = math.exp(-float(z) ** 2 / 2) / math.sqrt(2 * math.pi)
    return density / (f * (1 - f))


def threshold(f: float, n_small: int, n_large: int, rho: float, channels: int) -> float:
    """Contrast (noise SDs) that noise does not reach for two regions of ``n_small``
    and ``n_large`` pixels, share ``f`` of the smaller, under a selection of strength
    ``rho``: ``MARGIN * rho * noise_bound(f)`` plus ``Z`` standard errors of the
    Mahalanobis norm of a mean difference over ``channels`` channels."""
    se = math.sqrt(channels * (1 / n_small + 1 / n_large))
    return MARGIN * rho * noise_bound(f) + Z * se


def _one_image(x: torch.Tensor, labels: torch.Tensor, regions: int, rho: float,
               repeat: tuple[int, ...]) -> dict:
    """The statistics of one image ``x`` (C, *S) and its ``labels`` (*S), whose pixels
    are repeated ``repeat`` times along each axis."""
    grid = _grid(labels.shape)
    distinct = x[(slice(None), *(slice(None, None, r) for r in repeat))]
    scale, whiten = _noise(distinct, _grid(distinct.shape[1:]))
    area = torch.bincount(labels.reshape(-1), minlength=regions).tolist()
    reference = max(range(regions), key=lambda k: area[k])
    present = [k for k in range(regions) if k != reference and area[k]]
    if not present:  # one region: nothing was split
        return {"contrast": 0.0, "threshold": math.inf, "ratio": 0.0, "selection": 0.0,
                "noise": scale.tolist()}
    sample = labels[grid].reshape(-1)
    y = (_sampled(x, grid) / scale[:, None]).T  # noise SDs
    indicators = torch.stack([sample == k for k in present], 1).double()
    design = torch.cat([_background(labels.shape, grid, x.device), indicators], 1)
    gram = design.T @ design  # normal equations: P is small, the fit well conditioned
    coef = torch.linalg.lstsq(gram, design.T @ y).solution[-len(present):]  # (R, C)
    contrast = (coef @ whiten).norm(dim=1).tolist()
    # a repeated pixel is no new sample of the noise: count each block once
    block = math.prod(repeat)
    counts = [min(c, a / block) for c, a in
              zip(torch.bincount(sample, minlength=regions).tolist(), area)]
    best, selection = None, 0.0
    for k, c in zip(present, contrast):
        f = area[k] / (area[k] + area[reference])
        limit = threshold(f, max(counts[k], 1), counts[reference], rho, x.shape[0])
        selection = max(selection, c / noise_bound(f))
        if best is None or c / limit > best["ratio"]:
            best = {"contrast": c, "threshold": limit, "ratio": c / limit}
    return {**best, "selection": selection, "noise": scale.tolist()}


def repetition(x: torch.Tensor, lines: int = 64) -> tuple[int, ...]:
    """Per spatial axis of ``x`` (C, *S), the factor by which the image was enlarged by
    repeating each pixel (nearest neighbour; 1: not enlarged).

    Such an image (skimage's ``moon``, a zoomed screenshot, a binned micrograph shown
    at full size) changes only between blocks: every neighbour difference inside a
    block is zero, so the noise estimated from neighbour differences would be zero
    (every block start a multiple of the grid's step) or far too small.  The factor
    along an axis is the greatest common divisor of the positions ``i + 1`` where a
    value changes from ``i`` to ``i + 1``, on up to ``lines`` lines along that axis;
    it counts only from :data:`MIN_CHANGES` changes on, so a nearly constant image is
    not called enlarged by its few edges.
    """
    spatial = x.shape[1:]
    factors = []
    for d, n in enumerate(spatial):
        others = [k for k in range(len(spatial)) if k != d]
        step = max(1, math.ceil((math.prod(spatial[k] for k in others) / lines)
                                ** (1 / max(len(others), 1))))
        strip = x[(slice(None), *(slice(None) if k == d else slice(None, None, step)
                                  for k in range(len(spatial))))]
        changed = (strip.narrow(d + 1, 1, n - 1) != strip.narrow(d + 1, 0, n - 1))
        where = changed.movedim(d + 1, -1).reshape(-1, n - 1).any(0).nonzero().flatten()
        if len(where) < MIN_CHANGES:
            factors.append(1)
            continue
        factor = math.gcd(*(where + 1).tolist())
        factors.append(factor if n // factor >= 2 else 1)
    return tuple(factors)


def _noise(x: torch.Tensor, grid) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel noise SD of ``x`` (C, *S) from neighbour differences (taken where
    ``grid`` samples), and the matrix that whitens noise-scaled values (the inverse
    square root of the noise's robust correlation)."""
    diffs = torch.cat([_sampled(x.narrow(d, 1, x.shape[d] - 1), grid)
                       - _sampled(x.narrow(d, 0, x.shape[d] - 1), grid)
                       for d in range(1, x.ndim)], 1) / math.sqrt(2)  # one pixel's noise
    scale = _robust_sd(diffs)
    rms = diffs.pow(2).mean(1).sqrt()  # quantised or noise-free data: the median is 0
    scale = torch.where(scale > 0, scale, rms)
    usable = scale > 0  # a constant channel carries neither noise nor contrast
    scale = torch.where(usable, scale, torch.ones_like(scale))
    u = diffs / scale[:, None]
    c = x.shape[0]
    corr = torch.eye(c, dtype=diffs.dtype, device=x.device)
    for i in range(c):
        for j in range(i):
            plus, minus = _robust_sd(u[i] + u[j]) ** 2, _robust_sd(u[i] - u[j]) ** 2
            if plus + minus > 0:
                corr[i, j] = corr[j, i] = (plus - minus) / (plus + minus)
    values, vectors = torch.linalg.eigh(corr)
    whiten = vectors @ torch.diag(values.clamp_min(1e-3).rsqrt()) @ vectors.T
    return scale, whiten * usable[:, None]


def _sampled(x: torch.Tensor, grid) -> torch.Tensor:
    """The pixels of ``x`` (C, *S) that ``grid`` samples, ``(C, N)`` in float64."""
    return x[(slice(None), *grid)].reshape(x.shape[0], -1).double()


def _robust_sd(v: torch.Tensor) -> torch.Tensor:
    """Standard deviation from the median absolute value (zero-centred data)."""
    return v.abs().median(-1).values / MAD_NORMAL


def _background(shape, grid, device) -> torch.Tensor:
    """(N, P) design of a smooth background on the pixels ``grid`` samples: the
    monomials of the coordinates (-1..1 across the image) up to total degree
    :data:`DEGREE`, and along each axis below the number of its sampled coordinates
    (an axis sampled at 2 places carries a line, not a quartic: the design stays of
    full rank, whose normal equations would otherwise have no one solution, and an
    8-pixel-wide image got a different contrast at each call)."""
    ticks = [torch.linspace(-1, 1, n, dtype=torch.float64, device=device)[g]
             for n, g in zip(shape, grid)]
    axes = torch.meshgrid(*ticks, indexing="ij")
    coords = [a.reshape(-1) for a in axes]
    terms = [math.prod((coords[i] for i in combo), start=torch.ones_like(coords[0]))
             for degree in range(DEGREE + 1)
             for combo in itertools.combinations_with_replacement(range(len(coords)),
                                                                  degree)
             if all(combo.count(i) < len(t) for i, t in enumerate(ticks))]
    return torch.stack(terms, 1)


def _grid(shape) -> tuple[slice, ...]:
    """Every ``s``-th pixel along each axis, ``s`` the smallest step that samples at
    most :data:`SAMPLE_MAX` pixels."""
    step = 1
    while math.prod(-(-n // step) for n in shape) > SAMPLE_MAX:
        step += 1
    return tuple(slice(None, None, step) for _ in shape)
