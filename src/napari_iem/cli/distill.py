"""``napari-iem distill``: a thin layer over
:func:`napari_iem.analysis.distill_files.distill_folder`."""
from __future__ import annotations

import argparse
import sys

from . import EXIT_FAILED, EXIT_OK

EPILOG = """\
examples:
  napari-iem segment photos/ --out iem/
  napari-iem distill photos/ iem/ --out student/
  napari-iem distill images/ iem/ --out student/ --protocol paper --save-model horse.pt

The paper's optional second stage ("IEM+SegNet"): a small U-Net is trained on the IEM
labels of the whole folder (pseudo-labels: no ground truth is used) and then predicts
every image.  Labels are matched to images by stem (LABELS/x.png for IMAGES/x.jpg);
images without labels are not trained on but are predicted.  The student is binary:
any label > 0 is foreground.  Predictions are written as OUT/<stem>.png (0 background,
1 foreground), named as 'segment' names its labels; files an earlier distill wrote
there are replaced, any other file (or an input) at one of those names, or a folder
'segment' wrote into, stops the command before training.
Training is deterministic for a given --seed on the CPU.  It is opt-in: check on your
data that it helps (see docs/distill.md).

exit status: 0 all done, 1 some files could not be read (the others were used),
2 the command could not run, 130 interrupted."""


def cmd_distill(args: argparse.Namespace) -> int:
    from ..analysis.distill import DEFAULT_EPOCHS
    from ..analysis.distill_files import distill_folder

    epochs = args.epochs or DEFAULT_EPOCHS
    every = max(1, epochs // 10)

    def progress(epoch: int, total: int, loss: float) -> None:
        if not args.quiet and (epoch % every == 0 or epoch == total):
            print(f"epoch {epoch}/{total}: loss {loss:.4f}", file=sys.stderr, flush=True)

    done = distill_folder(
        args.images, args.labels, args.out, epochs=epochs, device=args.device,
        seed=args.seed, size=args.size, protocol=args.protocol, vflip=args.vflip,
        recursive=args.recursive, save_model=args.save_model, progress=progress,
        say=lambda line: print(f"napari-iem: {line}", file=sys.stderr))
    if not args.quiet:
        print(f"trained on {done.trained} image(s) in {done.seconds:.0f} s; wrote "
              f"{done.written} label image(s) to {args.out}"
              + (f"; model saved to {args.save_model}" if args.save_model else ""))
    return EXIT_FAILED if done.problems else EXIT_OK
