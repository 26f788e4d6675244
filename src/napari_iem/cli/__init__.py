"""The ``napari-iem`` command: ``segment`` many files, ``evaluate`` against ground truth.

The parser and the error handling live here; each command in its module:
``napari-iem segment`` (:mod:`.segment`) is a thin layer over
:func:`napari_iem.batch.run_batch`; ``napari-iem evaluate`` (:mod:`.evaluate`) over
:mod:`napari_iem.analysis.metrics`; ``napari-iem distill`` (:mod:`.distill`, the paper's
optional second stage) over :mod:`napari_iem.analysis.distill_files`.  Exit status: 0
success, 1 some files failed, 2 the command could not run (bad arguments, missing
input, unreadable settings, unwritable output folder), 130 interrupted.  Errors are one
line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from contextlib import contextmanager

from .. import __version__
from ..batch.flags import cli_wording

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _whole_number(minimum: int):
    """An argparse type for whole numbers of at least ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"expected a number of at least {minimum}, got {value}")
        return value
    return parse


_positive_int = _whole_number(1)
_non_negative_int = _whole_number(0)


def _spacing(text: str) -> tuple[float, ...]:
    """An argparse type for ``--scale``: comma-separated finite positive numbers."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive numbers such as 1,0.2,0.2, got {text!r}")
    return values


def _path(text: str) -> str:
    """An argparse type for paths: not an empty one, which would mean this folder
    (``--out "$OUT"`` with ``OUT`` unset would write the labels among its files)."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path; give a file or folder (. for "
                                         "this folder)")
    return text


def _add_knob_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every knob of the table (:mod:`napari_iem.engine.knobs`): the name
    with dashes, the older spellings as aliases, the knob's own check as the type."""
    from ..engine.knobs import KNOBS

    for k in KNOBS:
        if not k.cli:
            continue
        flags = (["-k"] if k.name == "regions" else []) + [k.flag, *k.aliases]
        if k.type is bool:  # --no-... too where it may be on without the flag
            on = True in _values(k).values()
            parser.add_argument(*flags, dest=k.name, default=None, help=_knob_help(k),
                                action=argparse.BooleanOptionalAction if on
                                else "store_true")
            continue
        metavar = "{" + ",".join(k.choices) + "}" if k.choices else k.name.upper()
        parser.add_argument(*flags, dest=k.name, type=k.parse, default=None,
                            metavar=metavar, help=_knob_help(k))


def _knob_help(k) -> str:
    """A knob's help in the command's words (:func:`cli_wording`: flags, not keywords;
    ``none``, not None), with what it allows and what leaving the flag out means."""
    said = [] if k.type is bool else [k.allowed()]
    return cli_wording(f"{k.help} ({'; '.join([*said, _default(k)])})")


def _values(k) -> dict:
    """What a knob is when its flag is left out (and no --config sets it): preset
    name -> value for a ``"param"`` knob ('default' picks the photo or the microscopy
    preset per image, so it is not one of them), ``{"": default}`` for a run knob."""
    from ..engine.presets import DEFAULT_PRESET, PRESETS

    if k.kind == "run":
        return {"": k.default}
    return {name: getattr(p, k.name) for name, p in PRESETS.items()
            if name != DEFAULT_PRESET}


def _default(k) -> str:
    """:func:`_values` in words: one value, or each preset's where they differ."""
    values = _values(k)
    if len(set(values.values())) == 1:
        return f"default: {_value_words(next(iter(values.values())))}"
    return "default by preset: " + ", ".join(f"{name} {_value_words(v)}"
                                             for name, v in values.items())


def _value_words(value) -> str:
    """A knob's value as the command line writes it."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return format(value, "g")  # 0.001, not 0.001000
    return "none" if value is None else str(value)


def knob_values(args: argparse.Namespace) -> dict:
    """The knobs given on the command line (those left out are None)."""
    from ..engine.knobs import KNOBS

    return {k.name: getattr(args, k.name) for k in KNOBS
            if k.cli and getattr(args, k.name, None) is not None}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``napari-iem`` (exposed for documentation and tests)."""
    from . import distill, evaluate, segment

    parser = argparse.ArgumentParser(
        prog="napari-iem",
        description="Unsupervised image segmentation by Inpainting Error Maximization "
                    "(IEM): segment image files and evaluate the results.",
        epilog="Run 'napari-iem COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"napari-iem {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    seg = sub.add_parser(
        "segment", help="segment image files (PNG, JPEG, TIFF) into label images",
        # its 40 flags in the usage line would be 30 lines above every mistyped value
        usage="%(prog)s INPUT [INPUT ...] -o DIR [OPTION ...]",
        description="Segment image files (PNG, JPEG, TIFF incl. 16-bit) and write label "
                    "images, resumably, with a progress bar and a report.",
        epilog=segment.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    seg.add_argument("inputs", nargs="+", type=_path, metavar="INPUT",
                     help="image files and/or folders of images")
    seg.add_argument("-o", "--out", required=True, type=_path, metavar="DIR",
                     help="output folder for labels, overlays and the report (created)")
    _add_knob_flags(seg)
    seg.add_argument("--config", type=_path, metavar="FILE",
                     help="settings file (.toml or .json: preset, regions, [params]); "
                          "options given here override it")
    seg.add_argument("--protocol", choices=["full", "paper"], default="full",
                     help="'paper': resize each image to the paper's 128x128 protocol "
                          "(shorter side 128, nearest, centre crop) before segmenting; "
                          "'full' (default): segment as is")
    seg.add_argument("--overwrite", action="store_true",
                     help="redo inputs whose labels are finished, and replace labels "
                          "napari-iem made from another file or with other settings "
                          "(default: skip the first, refuse the second); files it did "
                          "not write are never replaced")
    seg.add_argument("--overlay", action="store_true",
                     help="also write OUT/overlays/<stem>.png: the image with the regions "
                          "tinted and outlined")
    seg.add_argument("--workers", type=_non_negative_int, metavar="N",
                     help="local Dask workers (0: run in this process)")
    seg.add_argument("--scheduler", metavar="ADDRESS",
                     help="send the work to a running dask.distributed scheduler, e.g. "
                          "tcp://host:8786 (the workers must see the same paths)")
    seg.add_argument("--channel-axis", type=int, metavar="AXIS",
                     help="axis of the stored images that holds channels, e.g. 0 for "
                          "(C, Y, X) TIFFs (default: an OME-TIFF's C axis, else grey, "
                          "or RGB(A) last)")
    seg.add_argument("--scale", type=_spacing, metavar="Z,Y,X",
                     help="pixel spacing of the spatial axes (Y,X in 2-D), e.g. 1,0.2,0.2 "
                          "for a z step 5x the xy step; makes the filter anisotropic "
                          "(default: an OME-TIFF's physical sizes, else isotropic)")
    seg.add_argument("--format", choices=["auto", "png", "tiff", "ome-tiff", "ome-zarr"],
                     default="auto",
                     help="format of the labels (default auto: PNG for 2-D 8-bit labels, "
                          "else TIFF; OME-TIFF for an OME-TIFF input or n-D labels; "
                          "OME-Zarr OUT/<stem>.ome.zarr for an OME-Zarr input)")
    seg.add_argument("--recursive", action="store_true", help="search folders recursively")
    seg.add_argument("--report", choices=["csv", "json"], default="csv",
                     help="format of OUT/iem-report.* (default: csv)")
    seg.add_argument("--max-pixels", type=_positive_int, metavar="N",
                     help="refuse images with more than N pixels (default "
                          "$NAPARI_IEM_MAX_PIXELS, else 2**28)")
    seg.add_argument("--task-images", type=_positive_int, default=32, metavar="N",
                     help="at most N images of one size per Dask task (default 32)")
    seg.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar and no summary")
    seg.add_argument("--blocks", action="store_true",
                     help="one image larger than memory (OME-Zarr or zarr): solve it at "
                          "the working size (--max-size, default 1024), then refine the "
                          "boundary block by block at full size; --out is the labels' "
                          "zarr")
    seg.add_argument("--block-size", type=_positive_int, metavar="N",
                     help="--blocks: block side in pixels, a multiple of the refinement "
                          "tile (256 in 2-D, 96 in 3-D); default 2048 (2-D), 192 (3-D)")
    seg.set_defaults(func=segment.cmd_segment)

    ev = sub.add_parser(
        "evaluate", help="score label images against ground-truth masks",
        description="Compare predicted labels with ground-truth masks using the IEM "
                    "paper's metrics.",
        epilog=evaluate.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("pred_dir", type=_path, metavar="PRED_DIR", help="folder of predicted labels")
    ev.add_argument("gt_dir", type=_path, metavar="GT_DIR", help="folder of ground-truth masks")
    ev.add_argument("--protocol", choices=["full", "paper"], default="full",
                    help="'paper': bring the ground truth to the paper's 128x128 "
                         "protocol first (use with 'segment --protocol paper')")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ev.add_argument("--per-image", action="store_true",
                    help="also list the metrics of every image")
    ev.set_defaults(func=evaluate.cmd_evaluate)

    di = sub.add_parser(
        "distill", help="train a small network on a folder's IEM labels and predict "
                        "with it (the paper's optional second stage)",
        description="Train a small segmentation network (a U-Net) on the IEM labels of "
                    "a folder of images and write its predictions.",
        epilog=distill.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    di.add_argument("images", type=_path, metavar="IMAGES", help="folder (or file) of images")
    di.add_argument("labels", type=_path, metavar="LABELS",
                    help="folder of IEM label images, as written by 'napari-iem segment'")
    di.add_argument("-o", "--out", required=True, type=_path, metavar="DIR",
                    help="output folder for the student's labels (created)")
    di.add_argument("--epochs", type=_positive_int, metavar="N",
                    help="passes over all images (default 30; a few images need more)")
    di.add_argument("--device", default="auto", metavar="D",
                    help="torch device: auto (default), cpu, cuda, cuda:1, mps")
    di.add_argument("--seed", type=_non_negative_int, default=0, metavar="S",
                    help="seed of the weights, order and flips (default 0)")
    di.add_argument("--save-model", type=_path, metavar="PATH",
                    help="also write the trained network to PATH (napari_iem.analysis.distill."
                         "load_student reads it); a file there that is not a napari-iem "
                         "model is never replaced")
    di.add_argument("--size", type=_whole_number(16), metavar="N",
                    help="the network's square working resolution (default 128)")
    di.add_argument("--protocol", choices=["full", "paper"], default="full",
                    help="'paper': bring each image to the paper's 128x128 protocol "
                         "first (use with 'segment --protocol paper')")
    di.add_argument("--vflip", action="store_true",
                    help="also train on vertically flipped images (micrographs)")
    di.add_argument("--recursive", action="store_true", help="search IMAGES recursively")
    di.add_argument("-q", "--quiet", action="store_true",
                    help="no progress and no summary")
    di.set_defaults(func=distill.cmd_distill)
    return parser


# --------------------------------------------------------------------------- main

@contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM (``kill``, a job scheduler's stop) like Ctrl-C, so that a stopped
    run still closes its workers and writes its report."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    """Run ``napari-iem`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed)
        return int(exc.code or 0)
    try:
        with _sigterm_as_interrupt():
            return args.func(args)
    except KeyboardInterrupt:
        print("napari-iem: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError, MemoryError) as exc:
        # BatchError, SettingsError and ImageReadError are ValueErrors; one line each.
        text = " ".join(str(exc).split())
        config = getattr(args, "config", None)
        if not (config and text.startswith(f"{config}:")):  # a file's keys are its own
            text = cli_wording(text)
        print(f"napari-iem: error: {text}", file=sys.stderr)
        return EXIT_USAGE

