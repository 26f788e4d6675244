"""``napari-iem evaluate``: predicted labels against ground-truth masks.

Nothing is written; an input can still not be its own answer: the two folders, and
each pair of files, are compared by identity (a link would score 100 %).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import EXIT_FAILED, EXIT_OK

EPILOG = """\
examples:
  napari-iem evaluate pred/ data/horse/masks/ --protocol paper
  napari-iem evaluate pred/ gt/ --json > scores.json

Files are matched by stem (pred/x.png with gt/x.png or gt/x.tif; a stem of two files,
such as gt/x.png and gt/x.tif, is named and not scored); any label > 0 is foreground.
Metrics per image, then averaged: Acc, IoU and Dice with the better of the
two polarities (as the IEM paper reports them), mIoU (mean of foreground and background
IoU, each with its own flip), and fixed IoU (the tool's foreground, no flip).  The table
shows percentages, --json fractions in [0, 1]."""

_COLUMNS = (("acc", "Acc"), ("iou", "IoU"), ("miou", "mIoU"), ("dice", "Dice"),
            ("fixed_iou", "fixed IoU"))


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


def _match(pred_dir: Path, gt_dir: Path):
    """The two folders' files by stem: predictions, ground truths, the stems of both
    (sorted), the ground truths without a prediction, and one problem per stem of two
    files on either side (not scored: which one is meant is not known)."""
    from ..files.names import files_by_stem

    preds, pred_clash = files_by_stem(pred_dir)
    gts, gt_clash = files_by_stem(gt_dir)
    if pred_dir.samefile(gt_dir):
        raise ValueError(f"PRED_DIR and GT_DIR are the same folder ({pred_dir}): every "
                         "prediction would be scored against itself")
    pred_stems, gt_stems = {*preds, *pred_clash}, {*gts, *gt_clash}
    common = sorted(pred_stems & gt_stems)
    if not common:
        raise ValueError(
            f"no prediction in {pred_dir} has a ground truth of the same name in {gt_dir}"
        )
    problems = [{**gt_clash, **pred_clash}[s] for s in common
                if s in pred_clash or s in gt_clash]
    common = [s for s in common if s in preds and s in gts]
    return preds, gts, common, sorted(gt_stems - pred_stems), problems


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..analysis.metrics import evaluate_pairs, paper_protocol
    from ..files.read import ImageReadError, read_labels

    preds, gts, common, missing, problems = _match(Path(args.pred_dir),
                                                   Path(args.gt_dir))
    pairs_p, pairs_g, names = [], [], []
    for stem in common:
        if os.path.samefile(preds[stem], gts[stem]):  # a link: a perfect, false score
            problems.append(f"{preds[stem]} and {gts[stem]} are the same file")
            continue
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
