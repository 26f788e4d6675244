"""Named parameter sets for IEM.

``paper`` reproduces the authors' algorithm exactly (CVPR 2021 and their reference
code); ``default`` is what the tool uses unless told otherwise.  A preset is a plain
:class:`IEMParams`; any field can be overridden by keyword in :func:`napari_iem.segment`.
"""
from __future__ import annotations

from dataclasses import asdict, field, make_dataclass, replace

from .knobs import PARAM_KNOBS, check_params


def _docstring() -> str:
    lines = ["Every knob of the IEM engine (declared in :mod:`napari_iem.engine.knobs`).",
             "", "A frozen dataclass; a preset is one instance, :meth:`replace` overrides",
             "fields and checks the new values.", "", "Parameters", "----------"]
    for k in PARAM_KNOBS:
        kind = k.type.__name__ + (" or None" if k.optional else "")
        lines += [f"{k.name} : {kind}", f"    {k.help} Allowed: {k.allowed()}."]
    return "\n".join(lines)


def _replace(self, **changes) -> "IEMParams":
    """A copy with ``changes`` applied, each checked against its knob.

    The engine's own working copies (a per-axis sigma for anisotropic data, the 3-D
    smoothing threshold out of 27) are made with :func:`dataclasses.replace`, which
    does not check: they are derived, not chosen.
    """
    return replace(self, **check_params(changes))


def _to_dict(self) -> dict:
    return asdict(self)


#: A frozen dataclass whose fields are the ``"param"`` knobs, in the table's order.
IEMParams = make_dataclass(
    "IEMParams",
    [(k.name, (k.type | None) if k.optional else k.type, field(default=k.default))
     for k in PARAM_KNOBS],
    frozen=True,
    namespace={"replace": _replace, "to_dict": _to_dict,
               "__doc__": _docstring(), "__module__": __name__},
)


PRESETS: dict[str, IEMParams] = {
    # The authors' algorithm, exactly: used to check the engine against the reference.
    "paper": IEMParams(scaling="paper", foreground="init"),
    # The paper's 4-of-9 smoothing favours growth so much that a contour started outside
    # an object cannot shrink onto it (a textured disc inside the start square: IoU 0.53
    # with 4, 1.00 with a true majority of 5).  The foreground is the region nearer the
    # image centre ("centre"; on these photos the same as the region grown from the
    # centred square, and also right where the start grew round an off-centre object):
    # fixed IoU 63.4 / 40.1 on the development horses / SOD photos against 62.3 / 37.9
    # with the border rule (best polarity 63.8 / 46.5; docs/evaluation.md).
    # Photos are inpainted in CIE Lab, each channel stretched by its own range, so that
    # a colour difference counts as much as a brightness one (development horses, paper
    # protocol, fixed IoU: 52 in RGB, 67 in Lab; napari_iem.engine.colour).
    # Coarse to fine from 128 pixels, the paper's own scale: the contour reaches the
    # object on the small level and only its edge is decided at full size (30
    # development horses at full size, fixed IoU: 56.8 solved at full size and stopped
    # at the cap, 60.9 coarse to fine).
    # A texture channel (the local standard deviation of L* over the inpainter's own
    # 11-pixel footprint at the 128-pixel scale; engine/texture.py) lets regions of one
    # colour but different texture differ: development SOD photos, paper protocol,
    # fixed IoU 40.1 -> 44.8 (best polarity 46.5 -> 50.0), horses 63.4 -> 63.0.
    # Both presets count their true majority among the window's pixels inside the
    # image (``smooth_border="inside"``): zero padding erodes a region at the border,
    # where a corner pixel never reaches 5 of 9, and an 8x8 image of two halves lost
    # both (development sets: horses 63.0 -> 62.8, SOD 44.8 -> 44.7, nuclei 80.1).
    "photo": IEMParams(smooth_threshold=5, smooth_border="inside", scaling="auto",
                       foreground="centre", colour="lab", coarse_size=128,
                       check_structure=True, texture=11),
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
    # Coarse to fine from 256 pixels: nuclei are small, and at 128 pixels a 1024-pixel
    # field loses them (40 development nuclei at full size, fixed IoU: 78.3 at full
    # size, 78.3 from 256, 71.5 from 128).
    "microscopy": IEMParams(sigma=2.0, init="kmeans", smooth_threshold=5,
                            smooth_border="inside", scaling="percentile", intensity="auto",
                            foreground="area", colour="lab", coarse_size=256,
                            check_structure=True),
}

# Both test each partition against noise (engine/structure.py): 100% of 1,100 noise
# planes come out empty, and none of the 557 development images is called empty.

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
