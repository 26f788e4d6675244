"""Take the screenshots of docs/usage.md from real runs of the IEM widget in napari.

Run under a (virtual) display from the repository root::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_docs.py

Writes docs/images/{running,result,inspection,refine,tissue}.png.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
import PIL.Image
from qtpy.QtWidgets import QApplication

OUT = Path(__file__).resolve().parents[1] / "docs" / "images"
TIMEOUT_S = 300
# the widget's defaults, not the settings this user's widget remembers
os.environ["NAPARI_IEM_WIDGET_SETTINGS"] = str(Path(tempfile.mkdtemp()) / "settings.toml")


def settle(widget=None) -> None:
    """Process Qt events until ``widget`` (if given) has no worker running."""
    app = QApplication.instance()
    end = time.monotonic() + TIMEOUT_S
    while widget is not None and widget.running and time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    for _ in range(20):
        app.processEvents()


def shoot(viewer, name: str) -> None:
    """Save the whole window, quantized to 256 colours to keep the repository small."""
    settle()
    path = OUT / name
    viewer.screenshot(str(path), canvas_only=False)
    PIL.Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    print("wrote", path)


def open_viewer(sample: str):
    viewer = napari.Viewer(title="napari-iem")
    viewer.window.show()
    viewer.window.resize(1500, 950)  # after show, which restores napari's saved geometry
    viewer.open_sample("napari-iem", sample)
    _, widget = viewer.window.add_plugin_dock_widget("napari-iem", "Segment an image")
    settle()
    viewer.reset_view()  # fit the image to the canvas left beside the widget
    return viewer, widget


def coffee_shots() -> None:
    """Running (live preview), result, inspection maps and a refinement."""
    viewer, widget = open_viewer("coffee")
    widget.show_why.value = True  # the inspection maps, for inspection.png
    shots = {"taken": False}

    def during_run(progress):
        if progress.iteration >= 10 and not shots["taken"]:
            shots["taken"] = True
            shoot(viewer, "running.png")

    widget.run_button.click()
    widget.worker.yielded.connect(during_run)
    settle(widget)
    shoot(viewer, "result.png")

    labels = viewer.layers["coffee IEM"]
    rows, cols = np.ogrid[: labels.data.shape[0], : labels.data.shape[1]]
    saucer = ((rows - 235) / 165) ** 2 + ((cols - 290) / 220) ** 2 < 1
    painted = labels.data.copy()
    painted[~saucer] = 0  # the user erases the table from the foreground
    labels.data = painted
    widget.refine_button.click()
    settle(widget)
    shoot(viewer, "refine.png")

    widget.advanced.expand(animate=False)
    labels.visible = False
    viewer.layers["coffee IEM error"].visible = True
    viewer.layers.selection.active = viewer.layers["coffee IEM error"]
    shoot(viewer, "inspection.png")
    viewer.close()


def tissue_shot() -> None:
    """Three partitions on the IHC microscopy sample."""
    viewer, widget = open_viewer("tissue")
    widget.controls["regions"].value = 3
    widget.run_button.click()
    settle(widget)
    shoot(viewer, "tissue.png")
    viewer.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    coffee_shots()
    tissue_shot()


if __name__ == "__main__":
    main()
