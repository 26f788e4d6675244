"""Named parameter sets for IEM.

``paper`` reproduces the authors' algorithm exactly (CVPR 2021 and their reference
code); ``default`` is what the tool uses unless told otherwise.  A preset is a plain
:class:`IEMParams`; any field can be overridden by keyword in :func:`napari_iem.api`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class IEMParams:
    """Every knob of the IEM engine.

    Parameters
    ----------
    kernel_size : int
        Taps of the 1-D Gaussian of the inpainter (odd).
    sigma : float
        Standard deviation of that Gaussian, in pixels.
    reps : int
        How many times the separable filter is applied in a row.
    lam : float
        Weight of the Chan-Vese-like variance term subtracted from the inpainting error.
    smooth_threshold : int
        A pixel becomes foreground when at least this many of the 9 pixels of its 3x3
        neighbourhood are (4 in the paper, a bias towards growth; 5 is a true majority).
    max_iter : int
        Iterations at most; the run stops earlier at a fixed point.
    init : str
        ``"square"`` (the paper's centred square; for K > 2, where a square gives only two
        regions, k-means is used) or ``"kmeans"`` (K colour clusters of the smoothed image).
    max_size : int or None
        Working resolution: the longer side is downscaled to this many pixels for the
        optimisation and the labels are returned at full size.  ``None`` keeps the input size.
    scaling : str
        Intensity rule, see :mod:`napari_iem.engine.preprocess`.
    percentile_low, percentile_high : float
        The percentiles of each channel mapped to -1 and +1 by the percentile rule
        (non-8-bit input under ``"auto"``; ``"percentile"``).  Values outside are
        clipped, so hot pixels and saturated spots cannot stretch the range.
    colour : str
        ``"rgb"``: channels as given (the paper); ``"lab"``: an RGB image is converted to
        CIE L*a*b* and each channel stretched by its own robust range (at least 20 Lab
        units), so colour differences count as much as lightness; images that are not
        three-channel are unaffected.  See :mod:`napari_iem.engine.colour`.
    intensity : str
        ``"linear"``: values as given; ``"sqrt"``: the intensity rule works on the
        square roots of the values (measured from zero), the variance-stabilising
        transform for photon-counting images: shot noise grows with brightness, and
        after the root it is as strong on a bright nucleus as on the dark background,
        so the inpainter's squared error weighs both alike and dim objects are not
        drowned by bright ones; ``"auto"``: the root for a dark-field image (most
        values near the bottom of the range: fluorescence), linear otherwise.  Ignored
        on L*a*b* data.  See :mod:`napari_iem.engine.preprocess`.
    min_piece_size : int
        Clean-up: connected pieces of any region smaller than this many pixels (voxels)
        join their surroundings (foreground specks dropped, holes filled); ``0`` is off.
        See :mod:`napari_iem.analysis.cleanup`.
    foreground : str
        ``"border"``: for K=2 the region touching the image border less is foreground
        (label 1); ``"area"``: the smaller region is foreground (objects scattered over a
        background, as in a micrograph); ``"init"``: the region grown from the initial
        square stays label 1, as in the paper.
    """

    kernel_size: int = 11
    sigma: float = 5.0
    reps: int = 2
    lam: float = 1e-3
    smooth_threshold: int = 4
    max_iter: int = 150
    init: str = "square"
    max_size: int | None = None
    scaling: str = "auto"
    foreground: str = "init"
    percentile_low: float = 1.0
    percentile_high: float = 99.8
    colour: str = "rgb"
    intensity: str = "linear"
    min_piece_size: int = 0

    def replace(self, **changes) -> "IEMParams":
        """A copy with ``changes`` applied; unknown names raise a clear error."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(
                f"unknown IEM parameter(s) {unknown}; known parameters: {sorted(known)}"
            )
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, IEMParams] = {
    # The authors' algorithm, exactly: used to check the engine against the reference.
    "paper": IEMParams(scaling="paper", foreground="init"),
    # The paper's 4-of-9 smoothing favours growth so much that a contour started outside
    # an object cannot shrink onto it (a textured disc inside the start square: IoU 0.53
    # with 4, 1.00 with a true majority of 5); the border rule picks the foreground.
    # Photos are inpainted in CIE Lab, each channel stretched by its own range, so that
    # a colour difference counts as much as a brightness one (development horses, paper
    # protocol, fixed IoU: 52 in RGB, 67 in Lab; napari_iem.engine.colour).
    "photo": IEMParams(smooth_threshold=5, scaling="auto", foreground="border",
                       colour="lab"),
    # Micrographs: many small objects anywhere, not one in the middle.  The centred
    # square cannot reach them (the contour only moves on its own boundary), so the
    # start is the two-colour k-means partition and the inpainter is finer (sigma 2: a
    # nucleus is a few sigma across).  Fluorescence counts photons, so a dark-field
    # image is taken through the square root (shot noise made even; dim nuclei keep
    # their contrast) and a true majority smooths the labels.  Scattered nuclei meet the
    # border as often as their area predicts, so the background is the larger region.
    # Development nuclei at full size, fixed IoU: 80 with these settings, 77 with linear
    # intensities, 4-of-9 smoothing and the border rule, 21 with the photo preset at
    # 128 (docs/evaluation.md).
    "microscopy": IEMParams(sigma=2.0, init="kmeans", smooth_threshold=5,
                            scaling="percentile", intensity="auto", foreground="area",
                            colour="lab"),
}

#: What every entry point (segment, the CLI, the widget, settings files) uses unless
#: told otherwise: ``photo`` or ``microscopy``, picked per image from the image itself
#: (napari_iem.engine.autopreset), so a user who names no preset gets the right one for a
#: photo and for a micrograph.  Where no image is at hand (a settings file read on its
#: own) its fields read as the photo preset's.
DEFAULT_PRESET = "default"
PRESETS[DEFAULT_PRESET] = PRESETS["photo"]

#: Earlier names still understood: ``auto`` was the default's name in development.
PRESET_ALIASES = {"auto": DEFAULT_PRESET}


def preset_name(name: str) -> str:
    """The name of preset ``name`` with aliases resolved; a ValueError that lists the
    valid names when there is no such preset."""
    if isinstance(name, str):
        name = PRESET_ALIASES.get(name, name)
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return name


def get_preset(name: str) -> IEMParams:
    """Return the preset called ``name`` or raise a ValueError listing the valid names."""
    return PRESETS[preset_name(name)]
