"""Every knob of napari-iem, declared once: name, type, range or choices, help.

The Python API's keywords, the CLI's flags (``--max-iter`` from ``max_iter``, with the
older spellings kept as aliases), the settings files' keys and the widget's controls
(their ranges and tooltips) are all derived from :data:`KNOBS`, and every value from any
of them is checked by :meth:`Knob.check` before any work, with a message that names the
knob, the value and what is allowed.

Two kinds of knob: ``"param"`` knobs are the fields of
:class:`napari_iem.engine.presets.IEMParams` (a preset gives each a value, a caller may
override it); ``"run"`` knobs say what to do with the image (how many regions, which
preset, which device, how to read its axes) and have one default for every preset.
"""
from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

__all__ = ["Knob", "KNOBS", "PARAM_KNOBS", "RUN_KNOBS", "KnobError", "UnknownKnobError",
           "knob", "check_knobs", "check_params"]


class KnobError(ValueError):
    """A knob was given a value outside what it allows; the message names both."""


class UnknownKnobError(KnobError, TypeError):
    """A keyword that names no knob (a TypeError too, as Python's own for a wrong
    keyword argument)."""


@dataclass(frozen=True)
class Knob:
    """One parameter: how it is called, what it accepts, what it means.

    Parameters
    ----------
    name : str
        The Python keyword and settings key (the CLI flag is ``--name-with-dashes``).
    type : type
        ``int``, ``float``, ``str`` or ``bool``.
    default : object
        The value when nothing else sets it (for ``"param"`` knobs, the value of
        :class:`IEMParams` before a preset changes it).
    help : str
        One or two sentences for ``--help``, tooltips and the docs.
    kind : str
        ``"param"`` (a field of IEMParams) or ``"run"``.
    low, high : float, optional
        Inclusive bounds of a number.
    choices : tuple of str, optional
        The allowed values of a text knob.
    optional : bool
        ``None`` is allowed (meaning "off" or "as large as the input").
    odd : bool
        Only odd whole numbers.
    aliases : tuple of str
        Older CLI flags still understood.
    label : str, optional
        The widget's label (default: the name with spaces).
    widget : bool
        Whether the dock widget shows a control for it; those it does not show are
        set by the preset or a settings file (the widget's tooltip says so).
    cli : bool
        Whether ``napari-iem segment`` has a flag for it.
    """

    name: str
    type: type
    default: Any
    help: str
    kind: str = "param"
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False
    odd: bool = False
    aliases: tuple[str, ...] = ()
    label: str | None = None
    widget: bool = True
    cli: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def display(self) -> str:
        return self.label or self.name.replace("_", " ")

    def allowed(self) -> str:
        """What the knob accepts, in words (used in every error message)."""
        if self.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.type is bool:
            text = "true or false"
        elif self.type is str:
            text = "a name"
        else:
            what = {int: "an odd whole number" if self.odd else "a whole number",
                    float: "a finite number"}[self.type]
            if self.low is not None and self.high is not None:
                text = f"{what} from {_num(self.low)} to {_num(self.high)}"
            elif self.low is not None:
                text = f"{what} of at least {_num(self.low)}"
            else:
                text = what
        return text + (" or none" if self.optional else "")

    def check(self, value, source: str = "") -> Any:
        """``value`` as this knob's type, or a :class:`KnobError` naming the knob.

        Whole-number floats are accepted for ``int`` knobs (TOML and JSON write 2.0),
        any real number for a number (numpy's, a 0-d numpy array of one, a Fraction, a
        Decimal), text ``"none"`` for optional knobs (TOML has no null); nothing else is
        coerced: ``2.5`` iterations, ``nan``, a bool or a text for a number are refused.
        """
        where = f"{source}: " if source else ""
        if value is None or (self.optional and isinstance(value, str)
                             and value.lower() == "none"):
            if self.optional:
                return None
            raise KnobError(f"{where}{self.name} cannot be none; it must be {self.allowed()}")
        bad = KnobError(f"{where}{self.name} must be {self.allowed()}, got {value!r}")
        if self.type is bool:
            if isinstance(value, bool):
                return value
            raise bad
        if self.type is str:
            if not isinstance(value, str):
                raise bad
            if self.choices and value not in self.choices:
                raise KnobError(f"{bad}{_did_you_mean(value, self.choices)}")
            return value
        value = _scalar(value)
        if not isinstance(value, (numbers.Real, Decimal)) or isinstance(value, bool):
            raise bad  # numpy's numbers are Real, its bool is not
        try:
            number = float(value)
        except OverflowError:  # an int beyond float's range: out of any range
            raise bad from None
        if not math.isfinite(number):
            raise bad
        if self.type is int:
            if not number.is_integer() or (self.odd and int(number) % 2 == 0):
                raise bad
            value = int(number)
        else:
            value = number
        if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            raise bad
        return value

    def parse(self, text: str) -> Any:
        """A command-line string as this knob's value (argparse's ``type=``).  Its error
        does not name the flag: argparse puts ``argument --flag:`` before it."""
        import argparse

        try:
            if self.optional and text.lower() == "none":
                return None
            if self.type is bool:
                value = {"true": True, "false": False, "1": True, "0": False}[text.lower()]
            elif self.type in (int, float):
                value = float(text) if self.type is float or "." in text or "e" in text.lower() \
                    else int(text)
            else:
                value = text
            return self.check(value)
        except (KnobError, KeyError, ValueError):
            raise argparse.ArgumentTypeError(
                f"must be {self.allowed()}, got {text!r}") from None


def _scalar(value):
    """A 0-d numpy array of real numbers (``np.array(2)``, what numpy's reductions
    and indexing of 0-d arrays give) as its number; anything else as it is, for the
    checks to judge."""
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return value.item()
    return value


def _did_you_mean(name: str, names) -> str:
    """`` (did you mean 'x'?)`` for the one of ``names`` closest to a misspelt
    ``name`` (case aside), or nothing when none is close."""
    lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1)
    return f" (did you mean {lower[close[0]]!r}?)" if close else ""


def _refuse_unknown(names, known, where: str = "") -> None:
    """The :class:`UnknownKnobError` for the ``names`` not in ``known``: each with
    the close name it may have meant, then every known one."""
    unknown = sorted(set(names) - set(known))
    if unknown:
        guesses = "".join(_did_you_mean(n, known) for n in unknown)
        raise UnknownKnobError(f"{where}unknown parameter(s) {unknown}{guesses}; known "
                               f"parameters: {sorted(set(known))}")


def _num(x: float) -> str:
    """``x`` as a reader takes it in: a large power of two as ``2**40`` (a bound), not
    its 13 digits."""
    if not float(x).is_integer():
        return repr(float(x))
    x = int(x)
    return f"2**{x.bit_length() - 1}" if x >= 2**20 and x & (x - 1) == 0 else str(x)


#: Regions are one-hot maps of the whole image: 64 is already 64 full-size copies.
MAX_REGIONS = 64

KNOBS: tuple[Knob, ...] = (
    # ---- what to do ----------------------------------------------------------------
    Knob("regions", int, 2, "Number of partitions K: 2 is foreground and background.",
         kind="run", low=2, high=MAX_REGIONS, label="partitions"),
    Knob("preset", str, "default",
         "Parameter set: 'default' picks 'photo' for a photo or 'microscopy' for a "
         "micrograph from the image itself; 'paper' is the authors' algorithm exactly.",
         kind="run", choices=("default", "photo", "microscopy", "paper", "auto")),
    Knob("device", str, "auto", "Torch device: auto (cuda, then mps, then cpu), cpu, "
         "cuda, cuda:1, mps.", kind="run"),
    Knob("mode", str, "2d", "'2d': one image; 'slices': every 2-D plane of a stack on "
         "its own; 'volume': the last three axes as one 3-D problem.", kind="run",
         choices=("2d", "slices", "volume"), widget=False),
    Knob("sigma_units", str, "pixels", "'pixels' of the finest axis, or 'physical': "
         "the units of the pixel spacing on every axis (scale=, else a file's pixel "
         "sizes).", kind="run",
         choices=("pixels", "physical"), widget=False),
    Knob("flip", bool, False, "For 2 regions, swap foreground and background.",
         kind="run", widget=False),
    Knob("refine", bool, False, "With a working size smaller than the image, refine "
         "the boundary at full resolution afterwards.", kind="run",
         label="refine edges at full size"),
    Knob("instances", bool, False, "Also split the foreground into objects "
         "(distance-transform watershed).", kind="run", label="split objects"),
    Knob("maps", bool, True, "Return each region's inpainting and the error map "
         "(off saves memory on large inputs); files get labels only.", kind="run",
         widget=False, cli=False),
    # ---- the inpainter -----------------------------------------------------------------
    Knob("kernel_size", int, 11, "Taps of the inpainter's 1-D Gaussian.", low=1,
         high=101, odd=True, widget=False),
    Knob("sigma", float, 5.0, "Width (standard deviation) of the inpainter's Gaussian, "
         "in pixels of the working size.", low=0.1, high=1000.0, label="sigma (px)"),
    Knob("reps", int, 2, "Passes of the separable Gaussian in a row.", low=1, high=10,
         widget=False),
    Knob("texture", int, 0, "Texture channel: the local standard deviation of the "
         "first channel (lightness) over a box of this many pixels per 128 of the "
         "longer side, given to the inpainter as one more channel, so that regions of "
         "one colour but different texture differ; 0 is off.", low=0, high=128,
         widget=False),
    Knob("lam", float, 1e-3, "Weight of the region-variance term subtracted from the "
         "inpainting error (a weak Chan-Vese tie-breaker).", low=0.0, high=1.0,
         label="lambda"),
    # ---- the optimiser -----------------------------------------------------------------
    Knob("smooth_threshold", int, 4, "A pixel joins a region when at least this many "
         "of its 9 neighbours (3x3, itself included) are in it: 4 is the paper's, 5 a "
         "true majority.", low=1, high=9, label="smoothing threshold"),
    Knob("smooth_border", str, "zero", "How the smoothing counts at the image border: "
         "'zero' counts the window's pixels outside the image as background (the "
         "paper's zero padding: a corner pixel never reaches 5 of 9, so a region "
         "touching the border is eroded there and an image of 8x8 px loses its regions), "
         "'inside' takes the threshold's share of the window's pixels inside the image.",
         choices=("zero", "inside"), widget=False),
    Knob("max_iter", int, 150, "Iterations at most; a run stops earlier when its labels "
         "stop changing (or cycle).", low=1, high=100_000, aliases=("--iterations",),
         label="max iterations"),
    Knob("init", str, "square", "Start: 'square' (the paper's centred square; k-means "
         "for more than 2 regions) or 'kmeans' (colour clusters of the smoothed image).",
         choices=("square", "kmeans"), widget=False),
    Knob("max_size", int, None, "Working size: the longer side is scaled down to this "
         "many pixels for the optimisation; labels come back at full size. None: the "
         "image's own size.", low=5, high=2**20, optional=True, aliases=("--size",),
         label="max size (px)"),
    Knob("coarse_size", int, None, "Coarse to fine: solve first with the longer side "
         "at about this many pixels (the pyramid level nearest it), then at each finer "
         "level (twice the size) move only the pixels near the boundary, up to the "
         "working size. None: solve at the working size directly, as the paper does.",
         low=16, high=2**20, optional=True,
         widget=False),
    # ---- intensities -------------------------------------------------------------------
    Knob("scaling", str, "auto", "Intensity rule: 'auto' (8-bit as x/255, else "
         "percentiles), 'paper', 'percentile' or 'minmax'.",
         choices=("auto", "paper", "percentile", "minmax"), widget=False),
    Knob("foreground", str, "init", "Which region is label 1 for 2 regions: 'init' "
         "(the one grown from the start, as in the paper), 'border' (the one touching "
         "the image border less), 'area' (the smaller one) or 'centre' (the one nearer "
         "the image centre).", choices=("init", "border", "area", "centre"), widget=False),
    Knob("percentile_low", float, 1.0, "Percentile of each channel mapped to -1 by the "
         "percentile rule.", low=0.0, high=100.0, widget=False),
    Knob("percentile_high", float, 99.8, "Percentile of each channel mapped to +1 by "
         "the percentile rule.", low=0.0, high=100.0, widget=False),
    Knob("colour", str, "rgb", "'rgb': channels as given; 'lab': an RGB image is "
         "worked on in CIE L*a*b*, each channel stretched by its own range.",
         choices=("rgb", "lab"), widget=False),
    Knob("intensity", str, "linear", "'linear', 'sqrt' (variance-stabilising root for "
         "photon counts) or 'auto' (the root for dark-field images).",
         choices=("linear", "sqrt", "auto"), widget=False),
    # ---- nothing here -------------------------------------------------------------------
    Knob("check_structure", bool, False, "Before the labels are returned, test whether "
         "the regions differ by more than the same optimisation finds in noise; where "
         "they do not (an empty plane), the labels are all background and the result "
         "says 'no structure found'.", widget=False),
    # ---- clean-up ----------------------------------------------------------------------
    Knob("min_piece_size", int, 0, "Clean-up: pieces of any region smaller than this "
         "many pixels join their surroundings; 0 is off.", low=0, high=2**40,
         aliases=("--min-size",), label="min piece size (px)"),
)

BY_NAME = {k.name: k for k in KNOBS}
PARAM_KNOBS = tuple(k for k in KNOBS if k.kind == "param")
RUN_KNOBS = tuple(k for k in KNOBS if k.kind == "run")


def knob(name: str) -> Knob:
    """The knob called ``name``; a KnobError listing the known names otherwise."""
    _refuse_unknown([name], BY_NAME)
    return BY_NAME[name]


def check_knobs(values: dict, source: str = "", also=()) -> dict:
    """Check any knobs (``"run"`` and ``"param"``) at once, with the rules between them;
    what every entry point calls before it starts.  ``also``: the caller's keywords
    besides the knobs, named with them when a keyword is unknown (a misspelt
    ``channel_axis`` lands here)."""
    where = f"{source}: " if source else ""
    _refuse_unknown(values, [*BY_NAME, *also], where)
    params = {k: v for k, v in values.items() if k not in {r.name for r in RUN_KNOBS}}
    clean = {name: BY_NAME[name].check(v, source)
             for name, v in values.items() if name not in params}
    clean.update(check_params(params, source))
    if clean.get("flip") and clean.get("regions", 2) != 2:
        raise KnobError(f"{where}flip swaps foreground and background; it needs "
                        f"regions=2, got regions={clean['regions']}")
    return clean


def check_params(values: dict, source: str = "") -> dict:
    """Check several ``"param"`` values at once, including the rules between them."""
    where = f"{source}: " if source else ""
    _refuse_unknown(values, [k.name for k in PARAM_KNOBS], where)
    clean = {name: BY_NAME[name].check(v, source) for name, v in values.items()}
    low, high = clean.get("percentile_low"), clean.get("percentile_high")
    if low is not None and high is not None and not low < high:
        raise KnobError(f"{where}percentile_low ({low}) must be below percentile_high "
                        f"({high})")
    return clean
