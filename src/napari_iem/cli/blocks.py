"""``napari-iem segment IMAGE --out OUT --blocks``: one image larger than memory.

A thin layer over :func:`napari_iem.batch.blocks.segment_blocks`, reached from
:func:`napari_iem.cli.segment.cmd_segment` once the settings and flags are merged, so
``--config``, the knob flags, ``--scale``, ``--workers`` and ``--scheduler`` mean what
they mean for files.
"""
from __future__ import annotations

import sys

from . import EXIT_INTERRUPTED, EXIT_OK

#: The working size when none is given: the whole image is solved this large.
DEFAULT_MAX_SIZE = 1024


def cmd_blocks(args, settings: dict, given: dict, nd: dict) -> int:
    """Run the block mode for ``args.inputs`` (one image); the exit status."""
    from tqdm.auto import tqdm

    from ..batch.blocks import segment_blocks
    from ..batch.guard import BatchError

    if len(args.inputs) != 1:
        raise BatchError(f"--blocks segments one image; got {len(args.inputs)} inputs")
    knobs = {"max_size": DEFAULT_MAX_SIZE, **settings["params"], **nd}
    if "device" in given:
        knobs["device"] = given["device"]
    if args.scale is not None:
        knobs["scale"] = args.scale
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if args.quiet:
            return
        if bar is None:
            bar = tqdm(total=total, unit="block", desc="blocks", file=sys.stderr)
        bar.update(done - bar.n)

    try:
        run = segment_blocks(args.inputs[0], args.out, settings["regions"],
                             preset=settings["preset"], block_size=args.block_size,
                             scheduler=args.scheduler, workers=args.workers,
                             progress=progress, **knobs)
    except KeyboardInterrupt:
        print(f"interrupted: no labels written ({args.out} not made); run the same "
              "command again", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        peak = max(run.peak_rss.values(), default=0)
        print(f"{args.out}: {'x'.join(map(str, run.labels.shape))} labels, "
              f"{run.blocks_refined} of {run.blocks} blocks refined, working size "
              f"{'x'.join(map(str, run.facts['working_shape']))}, {run.seconds:.1f} s, "
              f"peak memory per worker {peak / 2**20:.0f} MB (estimated per block "
              f"{run.block_bytes / 2**20:.0f} MB)")
        if run.facts.get("stopped_at_cap"):
            print("the working-size solve stopped at the iteration cap without "
                  "converging: raise --max-iter or lower --max-size")
        if run.facts.get("structure_found") is False:
            print("no structure found: no region differs from what IEM finds in noise, "
                  "so the labels are all background")
    return EXIT_OK
