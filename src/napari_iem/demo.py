"""`make demo`: napari with a sample image and the IEM widget when a display exists,
otherwise the command line over a few sample images, written to ``demo-output/``."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import imageio.v3 as iio
from skimage import data

#: Offline scikit-image samples: two photos and two micrographs.
SAMPLES = {"coffee": data.coffee, "astronaut": data.astronaut, "coins": data.coins,
           "cell": data.cell}


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) or (
        sys.platform in ("darwin", "win32")
    )


def run_headless(out: Path) -> int:
    """Write the samples to ``out/samples`` and segment them with the CLI into
    ``out/labels`` (labels, overlays and the run's report)."""
    from .cli import main as cli_main

    inputs, labels = out / "samples", out / "labels"
    inputs.mkdir(parents=True, exist_ok=True)
    for name, load in SAMPLES.items():
        iio.imwrite(inputs / f"{name}.png", load())
    status = cli_main(["segment", str(inputs), "--out", str(labels), "--overlay",
                       "--max-size", "256"])
    if status == 0:
        print(f"\nlabels of {len(SAMPLES)} sample images are in {labels.resolve()}, "
              f"overlays in {(labels / 'overlays').resolve()}")
    return status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output", type=Path)
    parser.add_argument("--headless", action="store_true",
                        help="use the command line even when a display exists")
    args = parser.parse_args(argv)
    if has_display() and not args.headless:
        from ._napari.widget import launch_demo

        launch_demo()
        return 0
    return run_headless(args.out)


if __name__ == "__main__":
    sys.exit(main())
