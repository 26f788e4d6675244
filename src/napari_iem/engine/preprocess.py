"""From a user's array to what the engine optimises: channels first, float32, [-1, 1].

Intensity rule (``scaling``):

* ``"paper"``: 8-bit input is scaled as ``x / 255 * 2 - 1``, exactly as the authors'
  reference code does, so results match theirs; other dtypes use the ``"auto"`` rule.
* ``"auto"`` (default): 8-bit input (photos) uses the same fixed rule, because an 8-bit
  photo's full 0..255 range is meaningful and fixed scaling keeps the relative contrast
  between channels (colour).  Every other dtype (16-bit and 32-bit micrographs, floats)
  is scaled per channel from its 1st to its 99.8th percentile and clipped: a 16-bit
  camera image typically uses a few hundred of its 65,536 levels, so a fixed rule would
  squash it flat, and percentiles (as in CSBDeep/StarDist's normalisation) ignore the
  hot pixels and saturated spots that would dominate a min-max rule.  When more of a
  channel than the top percentile is saturated (its maximum value fills the top
  percentile), the upper percentile is taken among the unsaturated pixels instead,
  so the object's unsaturated parts keep their contrast (saturated pixels clip to +1).
  The percentiles are the parameters ``percentile_low`` and ``percentile_high``.
* ``"percentile"`` forces the percentile rule, ``"minmax"`` maps min..max to [-1, 1].

With ``intensity="sqrt"`` the rule is applied to the square roots of the values,
measured from zero (from the low end of the range when the data go negative): the
variance-stabilising transform of photon-counting images (Anscombe), under which shot
noise is as strong on a bright nucleus as on the dark background.  The range is found in
input units and carried through the square root, which keeps its order.
``intensity="auto"`` takes the root for a dark-field image (fluorescence: the median lies
in the lowest ``DARK_SHARE`` of the range, objects are bright on a near-black floor) and
keeps linear values otherwise (bright-field, phase contrast: objects may be darker than
the background, and the root would stretch their dark side); see :func:`settle_intensity`.

NaN or infinite pixels are refused with a message (IEM's filters would spread them over
the whole image); an image with a single value is refused (there is nothing to split).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .colour import (is_grey_rgb, lab_range, lab_to_input, rgb_scale, to_lab,
                     uses_lab)
from .presets import IEMParams
from .resample import carry_labels, downsample

MIN_SIDE = 5
PERCENTILES = (1.0, 99.8)
#: Images with more pixels than this take their intensity range from a regular subsample.
SAMPLE_MAX = 2**24
#: Rows scaled at a time (bounds the float64 temporaries on large images).
CHUNK_PIXELS = 2**22
#: ``intensity="auto"``: dark-field when the median lies this far up the percentile range
#: at most (development fluorescence nuclei: at most 0.09; bright-field: 0.82 and more;
#: scikit-image's phase-contrast ``cell``: 0.26)
DARK_SHARE = 0.2


#: PIL modes whose numbers are not grey or RGB intensities: palette indices, CMYK
#: (its K would be dropped as an alpha), other colour spaces (hue is an angle)
PIL_NOT_INTENSITIES = ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV")

_FLOAT32_SAFE = float(np.finfo(np.float32).max) / 4  # a map's range beyond it saturates


@dataclass
class PreparedImage:
    """An image ready for the engine, and how to map results back to the input."""

    data: np.ndarray  # (C, *working_shape) float32 in [-1, 1]
    shape: tuple[int, ...]  # spatial shape of the input
    low: np.ndarray  # (C,) input value mapped to -1
    high: np.ndarray  # (C,) input value mapped to +1
    has_channels: bool  # the input had a channel axis (kept last in outputs)
    lab_scale: float | None = None  # worked in L*a*b*: RGB full scale of the input
    sqrt_zero: float | None = None  # intensity="sqrt": the value whose root is 0
    grey_rgb: bool = False  # a grey RGB input, worked on as its one channel

    def to_input_units(self, maps: np.ndarray) -> np.ndarray:
        """``(K, C, *S)`` maps on the [-1, 1] scale to the input's units, channels last."""
        c = self.low.size
        low, high = (_root_units(v, self.sqrt_zero).reshape(1, c, *([1] * (maps.ndim - 2)))
                     for v in (self.low, self.high))
        fits = max(np.abs(self.low).max(), np.abs(self.high).max()) < _FLOAT32_SAFE
        # float32 and in place (the maps of a 2048x2048 photo are 25 M values), unless
        # the input's values lie beyond float32 (a float64 image of 1e300): float64,
        # then saturated at float32's range
        dtype = np.float32 if fits else np.float64
        out = np.add(maps, 1, dtype=dtype)
        out *= ((high - low) / 2).astype(dtype)
        out += low.astype(dtype)
        if self.sqrt_zero is not None:
            out *= out
            out += dtype(self.sqrt_zero)
        if not fits:
            out = np.clip(out, -_FLOAT32_SAFE, _FLOAT32_SAFE).astype(np.float32)
        if self.lab_scale is not None:
            return lab_to_input(np.moveaxis(out, 1, -1), self.lab_scale)
        if self.grey_rgb:
            return np.repeat(np.moveaxis(out, 1, -1), 3, axis=-1)
        return np.moveaxis(out, 1, -1) if self.has_channels else out[:, 0]


def _root_units(values, zero: float | None) -> np.ndarray:
    """Values (float64) in the units the range is applied in: as they are, or for
    ``intensity="sqrt"`` the roots of their distance above ``zero``."""
    values = np.asarray(values, dtype=np.float64)
    return values if zero is None else np.sqrt(np.clip(values - zero, 0, None))


def _channels_last(image: np.ndarray, channel_axis: int | None) -> tuple[np.ndarray, bool]:
    if channel_axis is not None:
        return np.moveaxis(image, channel_axis, -1), True
    if image.ndim == 2:
        return image[..., None], False
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return image[..., :3], True  # RGB; RGBA loses alpha
    raise ValueError(
        f"expected a 2-D image (H, W) or an RGB(A) image (H, W, 3|4), got shape "
        f"{image.shape}; for other layouts pass channel_axis= the axis holding channels, "
        "or mode='slices' (every 2-D plane) or mode='volume' (3-D) for stacks"
    )


def _range_per_channel(image: np.ndarray, rule: str,
                       percentiles=PERCENTILES) -> tuple[np.ndarray, np.ndarray]:
    """Input values mapped to -1 and +1, per channel (``image`` is channels-last)."""
    if rule in ("paper", "auto") and image.dtype == np.uint8:
        c = image.shape[-1]
        return np.zeros(c), np.full(c, 255.0)
    lo_p, hi_p = (float(q) for q in percentiles)
    if not 0 <= lo_p < hi_p <= 100:
        raise ValueError(
            f"percentiles must satisfy 0 <= low < high <= 100, got {lo_p}, {hi_p}"
        )
    flat = image.reshape(-1, image.shape[-1])
    if flat.shape[0] > SAMPLE_MAX:  # huge images: a regular subsample is plenty
        flat = flat[:: -(-flat.shape[0] // SAMPLE_MAX)]
    flat = flat.astype(np.float64)
    if rule in ("paper", "auto", "percentile"):
        low, high = np.percentile(flat, (lo_p, hi_p), axis=0)
        top = flat.max(0)
        saturated = (high >= top) & (top > low) & (hi_p < 100)
        for c in np.flatnonzero(saturated):  # the maximum fills the top percentile
            below = flat[:, c][flat[:, c] < top[c]]
            h2 = np.percentile(below, hi_p) if below.size else top[c]
            if h2 > low[c]:
                high[c] = h2
        flat_span = high <= low  # few distinct values: percentiles collapse
        low = np.where(flat_span, flat.min(0), low)
        high = np.where(flat_span, flat.max(0), high)
    elif rule == "minmax":
        low, high = flat.min(0), flat.max(0)
    else:
        raise ValueError(
            f"scaling must be 'auto', 'paper', 'percentile' or 'minmax', got {rule!r}"
        )
    # a constant channel maps to -1: a step float64 resolves at its level (1e17 + 1
    # is 1e17, and a zero span would make the whole channel NaN)
    high = np.where(high > low, high, low + np.maximum(1.0, np.spacing(np.abs(low))))
    return low, high


def plain_array(value, what: str = "image") -> np.ndarray:
    """``value`` as a numpy array, or a ValueError where the conversion would lose
    what the caller meant: a masked array's mask (numpy reads the hidden values as
    they are stored), a tensor numpy cannot read (one that needs grad, one on a GPU:
    torch's message says what to do), a PIL image whose numbers are not grey or RGB
    intensities (palette indices, CMYK, hue)."""
    mode = getattr(value, "mode", None) if hasattr(value, "getbands") else None
    if mode in PIL_NOT_INTENSITIES:
        raise ValueError(f"{what} is a PIL image in mode {mode!r}, whose numbers are not "
                         f"intensities: convert it first, e.g. {what}.convert('RGB')")
    if np.ma.is_masked(value):
        raise ValueError(
            f"{what} is a masked array with {np.ma.count_masked(value)} masked value(s), "
            f"which IEM would read as stored: fill them first, e.g. {what}.filled(value)"
        )
    try:
        return np.asarray(value)
    except (RuntimeError, TypeError, ValueError) as exc:  # ValueError: ragged lists
        raise ValueError(f"{what} cannot be read as a numpy array: {exc}") from None


def check_image(image) -> np.ndarray:
    """Validate dtype, size and values; return ``image`` as a numpy array."""
    image = np.asarray(image)
    if image.dtype == bool:
        if image.size and (image.all() or not image.any()):  # said in the user's values
            refuse_values(0, bool(image.flat[0]), bool(image.flat[0]))
        image = image.astype(np.uint8) * 255
    if image.dtype.kind not in "iuf":  # numpy's timedelta64 is an integer: not here
        raise ValueError(f"image must hold real numbers, got dtype {image.dtype}")
    refuse_empty(image.shape)
    bad = np.count_nonzero(~np.isfinite(image)) if image.dtype.kind == "f" else 0
    refuse_values(bad, image.min(), image.max())
    return image


def refuse_unknown_size(shape, what: str = "image") -> None:
    """The ValueError for a lazy array whose size is not known yet (a dask array after
    boolean indexing has NaN in its shape): every plan is made from the shape before
    a pixel is read, and dask itself says how to learn it."""
    if any(n != n for n in shape):  # NaN is the only value not equal to itself
        raise ValueError(f"{what} has unknown size (shape {tuple(shape)}, a dask array "
                         f"after boolean indexing, say): call {what}.compute_chunk_sizes() "
                         "first")


def refuse_empty(shape) -> None:
    """The ValueError for an input with no pixel: said first, from the shape alone
    (its axes could not be read as an image's either)."""
    if 0 in tuple(shape):
        raise ValueError(f"image is empty (shape {tuple(shape)})")


def refuse_values(nonfinite: int, lo, hi) -> None:
    """The ValueError for an image with NaN or infinite pixels or a single value
    (IEM's filters would spread a NaN everywhere; one value has nothing to split),
    or a range float64 cannot hold (integers near 2**64 that differ in their last
    digits, a span beyond 1.8e308: scaled, they would all be one value); one message
    whether the image was scanned whole or block by block."""
    if nonfinite:
        raise ValueError(
            f"image has {nonfinite} NaN or infinite pixel(s); replace them first, e.g. "
            "numpy.nan_to_num(image, nan=numpy.nanmedian(image))"
        )
    if lo == hi:
        raise ValueError(f"image is constant (every pixel is {lo}): nothing to segment")
    span = float(hi) - float(lo)  # what the intensity rule divides by, in float64
    if span == 0:
        raise ValueError(f"image values {lo!s}..{hi!s} are one value in float64, which IEM "
                         "computes in: subtract image.min() first")
    if not np.isfinite(span):
        raise ValueError(f"image values {lo!s}..{hi!s} span more than float64 holds: scale "
                         "them down first, e.g. image / numpy.abs(image).max()")


def prepare_image(image, params: IEMParams, channel_axis: int | None = None, *,
                  spatial_ndim: int = 2, value_range=None,
                  checked: bool = False) -> PreparedImage:
    """Validate ``image`` and turn it into a :class:`PreparedImage` for ``params``.

    ``spatial_ndim`` is 2 (an image) or 3 (a volume, ``(Z, Y, X[, C])``);
    ``value_range`` = ``(low, high)`` per channel overrides the intensity rule (used
    to scale every slice of a stack alike, see :mod:`napari_iem.engine.layout`);
    ``checked`` skips :func:`check_image` for an image its caller already checked (the
    pipeline prepares one image once per pyramid level: one scan is enough).
    """
    trusted = checked or value_range is not None
    image = np.asarray(image) if trusted else check_image(image)
    if spatial_ndim == 3 and channel_axis is None and image.ndim == 3:
        image, has_channels = image[..., None], False  # (Z, Y, X): no RGB guess
    else:
        image, has_channels = _channels_last(image, channel_axis)
    spatial = image.shape[:-1]
    if len(spatial) != spatial_ndim:
        raise ValueError(
            f"expected {spatial_ndim} spatial axes, got {len(spatial)} (shape "
            f"{image.shape} with channels last); for stacks and time series use "
            "mode='slices' or mode='volume'"
        )
    if min(spatial) < MIN_SIDE:
        raise ValueError(
            f"image is {'x'.join(map(str, spatial))} pixels; IEM needs at least "
            f"{MIN_SIDE} pixels on each side"
        )
    lab_scale, grey_rgb = None, False
    if uses_lab(params, image, has_channels):  # colour="lab", see napari_iem.engine.colour
        # a grey picture stored as RGB has no colour: its one channel as stored (the
        # Lab lightness would squash the dim end of a dark micrograph); a stack's
        # slices (value_range given) keep one rule for all, so they stay in Lab
        if value_range is None and is_grey_rgb(image):
            image, grey_rgb = image[..., :1], True
        else:
            lab_scale, image = rgb_scale(image), to_lab(image)
    if lab_scale is not None and value_range is None:
        low, high = lab_range(image, (params.percentile_low, params.percentile_high))
    elif value_range is None:
        low, high = _range_per_channel(
            image, params.scaling, (params.percentile_low, params.percentile_high)
        )
    else:
        low, high = (np.asarray(v, dtype=np.float64) for v in value_range)
    # the root is never taken on L*a*b* data (checked, not computed, there); a stack
    # arrives with its rule settled
    lab = lab_scale is not None
    zero = None if lab else root_zero(settle_intensity(params, image), low)
    data = np.moveaxis(unit_scale(image, low, high, zero), -1, 0)
    work = working_shape(spatial, params.max_size)
    if work != tuple(spatial):  # per-axis weighted sums: the same whole or in blocks
        data = downsample(data, work)
    return PreparedImage(np.ascontiguousarray(data), tuple(spatial), low, high,
                         has_channels, lab_scale, zero, grey_rgb)


def unit_scale(image: np.ndarray, low, high, zero: float | None) -> np.ndarray:
    """A channels-last ``image`` (or any block of it) on IEM's [-1, 1] scale, float32:
    ``low`` and ``high`` per channel map to -1 and +1 (through the root when ``zero``
    is set), clipped.  Pixel by pixel, so a block gets exactly the whole image's values.
    """
    lo, hi = _root_units(low, zero), _root_units(high, zero)  # hi > lo: roots keep order
    data = np.empty(image.shape, dtype=np.float32)
    step = max(1, CHUNK_PIXELS // max(1, image[:1].size))
    for i in range(0, image.shape[0], step):  # same values as one pass, less memory
        part = (_root_units(image[i : i + step], zero) - lo) / (hi - lo) * 2 - 1
        data[i : i + step] = np.clip(part, -1, 1)
    return data


def root_zero(params: IEMParams, low) -> float | None:
    """The value whose root is 0 under ``intensity="sqrt"`` (0, or the low end of the
    range when the data go negative); None for linear intensities."""
    return float(min(0.0, np.min(low))) if params.intensity == "sqrt" else None


def settle_intensity(params: IEMParams, image=None) -> IEMParams:
    """``params`` with ``intensity="auto"`` settled for ``image``: ``"sqrt"`` for a
    dark-field image, ``"linear"`` otherwise (see the module doc).

    The test pools every value of ``image`` (any layout, channels included), so a stack
    gets one answer for all its slices.  Raises a ValueError for an unknown rule.
    """
    intensity = params.intensity
    if intensity not in ("linear", "sqrt", "auto"):
        raise ValueError(f"intensity must be 'linear', 'sqrt' or 'auto', got {intensity!r}")
    if intensity != "auto" or image is None:
        return params
    flat = np.asarray(image).ravel()
    if flat.size > SAMPLE_MAX:
        flat = flat[:: -(-flat.size // SAMPLE_MAX)]
    if flat.size == 0 or flat.dtype.kind not in "biuf" or not np.isfinite(flat).all():
        return params  # left to check_image, which says what is wrong
    low, median, high = np.percentile(
        flat.astype(np.float64), (params.percentile_low, 50, params.percentile_high))
    dark = median - low <= DARK_SHARE * (high - low)
    return params.replace(intensity="sqrt" if dark else "linear")


def intensity_range(image: np.ndarray, params: IEMParams,
                    has_channels: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel values mapped to -1 and +1 for a channels-last ``image`` (a whole
    stack, to scale its slices alike): L*a*b* units when ``params.colour`` applies."""
    percentiles = (params.percentile_low, params.percentile_high)
    if uses_lab(params, image, has_channels):
        return lab_range(to_lab(image), percentiles)
    return _range_per_channel(image, params.scaling, percentiles)


def working_shape(shape, max_size: int | None) -> tuple[int, ...]:
    """``shape`` scaled so its longest side is at most ``max_size`` (None: unchanged)."""
    if max_size is None or max(shape) <= max_size:
        return tuple(shape)
    if max_size < MIN_SIDE:
        raise ValueError(f"max_size must be at least {MIN_SIDE} pixels, got {max_size}")
    f = max_size / max(shape)
    return tuple(max(MIN_SIDE, round(n * f)) for n in shape)


def resize_labels(labels: np.ndarray, shape) -> np.ndarray:
    """Nearest-neighbour resize of integer labels (no new values appear)."""
    if labels.shape == tuple(shape):
        return labels
    return carry_labels(labels, shape)  # skimage's order 0, as index maps


def resize_maps(maps: np.ndarray, shape) -> np.ndarray:
    """Linear resize of float maps ``(..., *S)`` to spatial ``shape`` (pixel centres
    aligned, edge values held), float32.

    torch's ``interpolate`` for 1 to 3 spatial axes: the maps of a 2048x2048 photo
    from a 256 px working size in 0.07 s, against 1.6 s for skimage's ``resize``
    (which mirrors at the edges instead: the two differ only within half a working
    pixel of the border).
    """
    if maps.shape[-len(shape):] == tuple(shape):
        return maps
    lead = maps.shape[: maps.ndim - len(shape)]
    mode = {2: "bilinear", 3: "trilinear"}[len(shape)]  # a layout's 2 or 3 axes
    flat = torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32)).reshape(
        1, -1, *maps.shape[len(lead):])
    out = torch.nn.functional.interpolate(flat, size=tuple(shape), mode=mode,
                                          align_corners=False)
    return out.reshape(*lead, *shape).numpy()
