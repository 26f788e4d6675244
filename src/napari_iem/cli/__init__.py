"""The ``napari-iem`` command: ``segment`` many files, ``evaluate`` against ground truth.

``napari-iem segment`` is a thin layer over :func:`napari_iem.batch.run.run_batch`;
``napari-iem evaluate`` over :mod:`napari_iem.analysis.metrics`; ``napari-iem distill`` (the
paper's optional second stage) over :mod:`napari_iem.analysis.distill`.  Exit status: 0 success,
1 some files failed, 2 the command could not run (bad arguments, missing input, unreadable
settings, unwritable output folder), 130 interrupted.  Errors are one line on stderr.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from . import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_SEGMENT_EPILOG = """\
examples:
  napari-iem segment photos/ --out labels/
  napari-iem segment a.png b.tif --out out/ --regions 3 --overlay
  napari-iem segment images/ --out pred/ --preset paper --protocol paper
  napari-iem segment big/ --out out/ --size 512 --workers 2
  napari-iem segment data/ --out out/ --scheduler tcp://10.0.0.5:8786

Labels are written as OUT/<stem>.png (0 background, 1..K-1 regions; .tif for 16-bit or
n-D), with a report OUT/iem-report.csv.  Files whose labels already exist are skipped,
so rerunning an interrupted command resumes it (--overwrite redoes them).  Without
--workers or --scheduler, work runs in this process, or on a local Dask cluster with one
worker per core for large jobs on machines of more than 4 cores; --workers 0 always runs
in this process.

exit status: 0 all done, 1 some files failed (see the report), 2 the command could not
run, 130 interrupted."""

_EVALUATE_EPILOG = """\
examples:
  napari-iem evaluate pred/ data/horse/masks/ --protocol paper
  napari-iem evaluate pred/ gt/ --json > scores.json

Files are matched by stem (pred/x.png with gt/x.png or gt/x.tif); any label > 0 is
foreground.  Metrics per image, then averaged: Acc, IoU and Dice with the better of the
two polarities (as the IEM paper reports them), mIoU (mean of foreground and background
IoU, each with its own flip), and fixed IoU (the tool's foreground, no flip).  The table
shows percentages, --json fractions in [0, 1]."""

_DISTILL_EPILOG = """\
examples:
  napari-iem segment photos/ --out iem/
  napari-iem distill photos/ iem/ --out student/
  napari-iem distill images/ iem/ --out student/ --protocol paper --save-model horse.pt

The paper's optional second stage ("IEM+SegNet"): a small U-Net is trained on the IEM
labels of the whole folder (pseudo-labels: no ground truth is used) and then predicts
every image.  Labels are matched to images by stem (LABELS/x.png for IMAGES/x.jpg);
images without labels are not trained on but are predicted.  The student is binary:
any label > 0 is foreground.  Predictions are written as OUT/<stem>.png (0 background,
1 foreground), named as 'segment' names its labels; existing files are replaced.
Training is deterministic for a given --seed on the CPU.  It is opt-in: check on your
data that it helps (see docs/distill.md).

exit status: 0 all done, 1 some files could not be read (the others were used),
2 the command could not run, 130 interrupted."""


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


def _add_knob_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every knob of the table (:mod:`napari_iem.engine.knobs`): the name
    with dashes, the older spellings as aliases, the knob's own check as the type."""
    from .engine.knobs import KNOBS

    for k in KNOBS:
        if not k.cli:
            continue
        flags = (["-k"] if k.name == "regions" else []) + [k.flag, *k.aliases]
        if k.type is bool:
            parser.add_argument(*flags, dest=k.name, action="store_true", default=None,
                                help=k.help)
            continue
        metavar = "{" + ",".join(k.choices) + "}" if k.choices else k.name.upper()
        parser.add_argument(*flags, dest=k.name, type=k.parse, default=None,
                            metavar=metavar, help=f"{k.help} ({k.allowed()})")


def knob_values(args: argparse.Namespace) -> dict:
    """The knobs given on the command line (those left out are None)."""
    from .engine.knobs import KNOBS

    return {k.name: getattr(args, k.name) for k in KNOBS
            if k.cli and getattr(args, k.name, None) is not None}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``napari-iem`` (exposed for documentation and tests)."""
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
        description="Segment image files (PNG, JPEG, TIFF incl. 16-bit) and write label "
                    "images, resumably, with a progress bar and a report.",
        epilog=_SEGMENT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    seg.add_argument("inputs", nargs="+", metavar="INPUT",
                     help="image files and/or folders of images")
    seg.add_argument("-o", "--out", required=True, metavar="DIR",
                     help="output folder for labels, overlays and the report (created)")
    _add_knob_flags(seg)
    seg.add_argument("--config", metavar="FILE",
                     help="settings file (.toml or .json: preset, regions, [params]); "
                          "options given here override it")
    seg.add_argument("--protocol", choices=["full", "paper"], default="full",
                     help="'paper': resize each image to the paper's 128x128 protocol "
                          "(shorter side 128, nearest, centre crop) before segmenting; "
                          "'full' (default): segment as is")
    seg.add_argument("--overwrite", action="store_true",
                     help="redo files whose labels already exist (default: skip them)")
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
                          "(C, Y, X) TIFFs (default: grey, or RGB(A) last)")
    seg.add_argument("--recursive", action="store_true", help="search folders recursively")
    seg.add_argument("--report", choices=["csv", "json"], default="csv",
                     help="format of OUT/iem-report.* (default: csv)")
    seg.add_argument("--max-pixels", type=_positive_int, metavar="N",
                     help="refuse images with more than N pixels (default 2**28)")
    seg.add_argument("--task-images", type=_positive_int, default=32, metavar="N",
                     help="at most N images of one size per Dask task (default 32)")
    seg.add_argument("-q", "--quiet", action="store_true",
                     help="no progress bar and no summary")
    seg.set_defaults(func=cmd_segment)

    ev = sub.add_parser(
        "evaluate", help="score label images against ground-truth masks",
        description="Compare predicted labels with ground-truth masks using the IEM "
                    "paper's metrics.",
        epilog=_EVALUATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("pred_dir", metavar="PRED_DIR", help="folder of predicted labels")
    ev.add_argument("gt_dir", metavar="GT_DIR", help="folder of ground-truth masks")
    ev.add_argument("--protocol", choices=["full", "paper"], default="full",
                    help="'paper': bring the ground truth to the paper's 128x128 "
                         "protocol first (use with 'segment --protocol paper')")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ev.add_argument("--per-image", action="store_true",
                    help="also list the metrics of every image")
    ev.set_defaults(func=cmd_evaluate)

    di = sub.add_parser(
        "distill", help="train a small network on a folder's IEM labels and predict "
                        "with it (the paper's optional second stage)",
        description="Train a small segmentation network (a U-Net) on the IEM labels of "
                    "a folder of images and write its predictions.",
        epilog=_DISTILL_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    di.add_argument("images", metavar="IMAGES", help="folder (or file) of images")
    di.add_argument("labels", metavar="LABELS",
                    help="folder of IEM label images, as written by 'napari-iem segment'")
    di.add_argument("-o", "--out", required=True, metavar="DIR",
                    help="output folder for the student's labels (created)")
    di.add_argument("--epochs", type=_positive_int, metavar="N",
                    help="passes over all images (default 30; a few images need more)")
    di.add_argument("--device", default="auto", metavar="D",
                    help="torch device: auto (default), cpu, cuda, cuda:1, mps")
    di.add_argument("--seed", type=_non_negative_int, default=0, metavar="S",
                    help="seed of the weights, order and flips (default 0)")
    di.add_argument("--save-model", metavar="PATH",
                    help="also write the trained network to PATH (napari_iem.analysis.distill."
                         "load_student reads it)")
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
    di.set_defaults(func=cmd_distill)
    return parser


# --------------------------------------------------------------------------- segment

def cmd_segment(args: argparse.Namespace) -> int:
    from .batch.run import BatchInterrupted, run_batch
    from .engine.knobs import PARAM_KNOBS
    from .files.settings import load_settings, validate_settings

    settings = load_settings(args.config) if args.config else validate_settings({})
    given = knob_values(args)
    for name in ("regions", "preset"):
        if name in given:
            settings[name] = given.pop(name)
    params = {k.name for k in PARAM_KNOBS}
    settings["params"].update({k: v for k, v in given.items() if k in params})
    settings = validate_settings(settings, source="options")
    # how to read and what to write: per file, not part of a settings file
    nd = {k: given[k] for k in ("mode", "instances", "refine", "flip", "sigma_units")
          if k in given and not (k == "mode" and given[k] == "2d")}
    try:
        report = run_batch(
            args.inputs, args.out, settings["regions"], settings["preset"],
            scheduler=args.scheduler, workers=args.workers, overwrite=args.overwrite,
            overlay=args.overlay, device=given.get("device", "auto"),
            protocol=None if args.protocol == "full" else args.protocol,
            channel_axis=args.channel_axis,
            nd_options=nd,
            recursive=args.recursive, max_pixels=args.max_pixels,
            task_images=args.task_images, report=args.report,
            progress=not args.quiet, **settings["params"],
        )
    except BatchInterrupted as stop:
        print(stop.report.summary(), file=sys.stderr)
        print("interrupted: finished labels are kept; run the same command again to "
              "resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet or not report.ok:
        print(report.summary(max_failures=20 if not args.quiet else 5),
              file=sys.stdout if report.ok else sys.stderr)
    return EXIT_OK if report.ok else EXIT_FAILED


# --------------------------------------------------------------------------- evaluate

_COLUMNS = (("acc", "Acc"), ("iou", "IoU"), ("miou", "mIoU"), ("dice", "Dice"),
            ("fixed_iou", "fixed IoU"))


def _label_files(folder: Path) -> dict[str, Path]:
    from .files.io import find_images, safe_stem

    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    out: dict[str, Path] = {}
    for p in find_images([folder]):
        out.setdefault(safe_stem(p.name), p)
    return out


def format_table(scores: dict, per_image: list | None = None) -> str:
    """The metrics as a plain-text table, in percent."""
    head = ["images"] + [title for _, title in _COLUMNS]
    row = [str(scores["n_images"])] + [f"{100 * scores[k]:.1f}" for k, _ in _COLUMNS]
    rows = [head, row]
    lines = []
    if per_image:
        name_w = max(len("file"), *(len(r["file"]) for r in per_image))
        lines.append("  ".join(["file".ljust(name_w)] + [t.rjust(9) for _, t in _COLUMNS]))
        for r in per_image:
            lines.append("  ".join([r["file"].ljust(name_w)]
                                   + [f"{100 * r[k]:9.1f}" for k, _ in _COLUMNS]))
        lines.append("")
    widths = [max(len(a), len(b)) for a, b in zip(*rows)]
    for r in rows:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    return "\n".join(lines)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .files.io import ImageReadError, read_labels
    from .analysis.metrics import evaluate_pairs, paper_protocol

    pred_dir, gt_dir = Path(args.pred_dir), Path(args.gt_dir)
    preds = _label_files(pred_dir)
    gts = _label_files(gt_dir)
    common = sorted(set(preds) & set(gts))
    if not common:
        raise ValueError(
            f"no prediction in {pred_dir} has a ground truth of the same name in {gt_dir}"
        )
    missing = sorted(set(gts) - set(preds))
    pairs_p, pairs_g, names, problems = [], [], [], []
    for stem in common:
        try:
            p = read_labels(preds[stem])
            g = read_labels(gts[stem])
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        if args.protocol == "paper":
            g = paper_protocol(g)
        if p.shape != g.shape:
            hint = ""
            if args.protocol == "full" and p.shape == (128, 128):
                hint = " (predictions made with --protocol paper? add --protocol paper)"
            problems.append(
                f"{preds[stem].name}: prediction {'x'.join(map(str, p.shape))} but ground "
                f"truth {'x'.join(map(str, g.shape))}{hint}"
            )
            continue
        pairs_p.append(p)
        pairs_g.append(g)
        names.append(preds[stem].name)
    if not pairs_p:
        raise ValueError("no pair could be compared: " + (problems[0] if problems else ""))
    mean, per_image = evaluate_pairs(pairs_p, pairs_g)
    per_image = [{"file": name, **row} for name, row in zip(names, per_image)]
    if args.json:
        out = {"protocol": args.protocol, **mean, "missing_predictions": missing,
               "problems": problems}
        if args.per_image:
            out["per_image"] = per_image
        print(json.dumps(out, indent=2))
    else:
        print(format_table(mean, per_image if args.per_image else None))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        print(f"napari-iem: {len(missing)} ground-truth mask(s) without a prediction, "
              f"not scored: {shown}", file=sys.stderr)
    for line in problems:
        print(f"napari-iem: not scored: {line}", file=sys.stderr)
    return EXIT_FAILED if problems else EXIT_OK


# --------------------------------------------------------------------------- distill

def _distill_input(path: Path, protocol: str):
    """An image for the student, checked to be 2-D grey or colour."""
    from .analysis.distill import image_to_input
    from .files.io import read_image

    img = read_image(path)
    if protocol == "paper":
        from .analysis.metrics import paper_protocol

        img = paper_protocol(img)
    image_to_input(img)  # raises ValueError for stacks and other layouts
    return img


def cmd_distill(args: argparse.Namespace) -> int:
    import time

    from .analysis.distill import (DEFAULT_EPOCHS, DEFAULT_SIZE, predict_student, save_student,
                          train_student)
    from .files.io import ImageReadError, find_images, read_labels, unique_stems, write_labels

    images_in, labels_dir, out_dir = Path(args.images), Path(args.labels), Path(args.out)
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"LABELS is not a folder: {labels_dir}")
    if out_dir.resolve() == labels_dir.resolve():
        raise ValueError(f"--out {out_dir} is the LABELS folder: the student's labels "
                         "would replace the IEM labels it learns from; choose another")
    if images_in.is_dir() and out_dir.resolve() == images_in.resolve():
        raise ValueError(f"--out {out_dir} is the IMAGES folder; choose another")
    files = find_images([images_in], recursive=args.recursive)
    if not files:
        raise ValueError(f"no images (PNG, JPEG, TIFF) in {images_in}")
    stems = unique_stems(files)
    label_files = _label_files(labels_dir)
    if not set(stems) & set(label_files):
        raise ValueError(f"no image in {images_in} has a label file of the same name in "
                         f"{labels_dir}")

    problems: list[str] = []
    images, names, train_x, train_y = [], [], [], []
    for path, stem in zip(files, stems):
        try:
            img = _distill_input(path, args.protocol)
        except (ImageReadError, ValueError) as exc:
            problems.append(str(exc) if str(path) in str(exc) else f"{path}: {exc}")
            continue
        images.append(img)
        names.append(stem)
        if stem not in label_files:
            continue
        try:
            lab = read_labels(label_files[stem])
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        if lab.shape != img.shape[:2]:
            hint = ""
            if args.protocol == "full" and lab.shape == (128, 128):
                hint = " (labels made with --protocol paper? add --protocol paper)"
            problems.append(
                f"{label_files[stem]}: labels {'x'.join(map(str, lab.shape))} but image "
                f"{'x'.join(map(str, img.shape[:2]))}{hint}; not trained on")
            continue
        train_x.append(img)
        train_y.append(lab)
    for line in problems:
        print(f"napari-iem: {line}", file=sys.stderr)
    if not train_x:
        raise ValueError("no image could be paired with its labels"
                         + (" (see the messages above)" if problems else ""))

    epochs = args.epochs or DEFAULT_EPOCHS
    every = max(1, epochs // 10)

    def progress(epoch: int, total: int, loss: float) -> None:
        if not args.quiet and (epoch % every == 0 or epoch == total):
            print(f"epoch {epoch}/{total}: loss {loss:.4f}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    model = train_student(train_x, train_y, epochs=epochs, device=args.device,
                          seed=args.seed, size=args.size or DEFAULT_SIZE,
                          vflip=args.vflip, progress=progress)
    seconds = time.perf_counter() - start
    if args.save_model:
        save_student(model, args.save_model)
    preds = predict_student(model, images, args.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stem, pred in zip(names, preds):
        write_labels(pred, out_dir, stem)
    if not args.quiet:
        print(f"trained on {len(train_x)} image(s) in {seconds:.0f} s; wrote "
              f"{len(preds)} label image(s) to {out_dir}"
              + (f"; model saved to {args.save_model}" if args.save_model else ""))
    return EXIT_FAILED if problems else EXIT_OK


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
        # BatchError, SettingsError and ImageReadError are ValueErrors.
        print(f"napari-iem: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
