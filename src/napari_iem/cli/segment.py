"""``napari-iem segment``: a thin layer over :func:`napari_iem.batch.run_batch`.

The flags of the knobs come from the knob table (:func:`napari_iem.cli._add_knob_flags`);
a ``--config`` file is read first and the flags given on the command line win.
"""
from __future__ import annotations

import argparse
import sys

from . import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, knob_values

EPILOG = """\
examples:
  napari-iem segment photos/ --out labels/
  napari-iem segment a.png b.tif --out out/ --regions 3 --overlay
  napari-iem segment images/ --out pred/ --preset paper --protocol paper
  napari-iem segment big/ --out out/ --size 512 --workers 2
  napari-iem segment data/ --out out/ --scheduler tcp://10.0.0.5:8786
  napari-iem segment vol.ome.tif --out out/ --mode volume --scale 1,0.2,0.2

Labels are written as OUT/<stem>.png (0 background, 1..K-1 regions; .tif for 16-bit or
n-D; OME-TIFF, with the source's axes, pixel sizes and the run's provenance, for an
OME-TIFF input or n-D labels), with a report OUT/iem-report.csv and a manifest
OUT/iem-manifest.json of what was made from what.  Inputs whose labels are finished
(same file, same contents, same settings) are skipped, so rerunning an interrupted
command resumes it; labels made from another file or with other settings are refused
unless --overwrite is given.  Files napari-iem did not write are never replaced, and a
folder 'distill' wrote into is refused.
Without --workers or --scheduler, work runs in this process, or on a local Dask cluster
with one worker per core for large jobs on machines of more than 4 cores; --workers 0
always runs in this process.

exit status: 0 all done, 1 some files failed or were refused (see the report), 2 the
command could not run, 130 interrupted."""


def cmd_segment(args: argparse.Namespace) -> int:
    from ..batch import BatchInterrupted, run_batch
    from ..engine.knobs import PARAM_KNOBS
    from ..files.settings import load_settings, validate_settings

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
    if getattr(args, "blocks", False):  # one image larger than memory
        from .blocks import cmd_blocks

        return cmd_blocks(args, settings, given, nd)
    try:
        report = run_batch(
            args.inputs, args.out, settings["regions"], settings["preset"],
            scheduler=args.scheduler, workers=args.workers, overwrite=args.overwrite,
            overlay=args.overlay, device=given.get("device", "auto"),
            protocol=None if args.protocol == "full" else args.protocol,
            channel_axis=args.channel_axis,
            **({} if args.scale is None else {"scale": args.scale}),
            nd_options=nd,
            recursive=args.recursive, max_pixels=args.max_pixels,
            task_images=args.task_images, report=args.report, format=args.format,
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
