"""A widget run against the same library call, side by side in one process.

    xvfb-run -a python benchmarks/widget_vs_library.py [--repeat 3] [--max-size N]
                                                        [--image coffee]

The real dock widget in a real (virtual-display) napari window segments the image as a
user would (press Run, wait for the layers), then :func:`napari_iem.segment` runs with
exactly the options the widget planned (:func:`napari_iem._napari.run_request.plan_run`)
and the preset the user chose (``default``, whose pick the library call then makes
itself, as a user's ``segment(image)`` does), alternately, ``--repeat`` times each, on a
thread of napari's pool like the widget's engine (see ``library_run``).
``--max-size`` is the widget's working size (its own start when not given).  The
table gives the median seconds of both and their ratio (issue 13's target: a widget
run at most 1.2x the library call).  The widget's time runs from the click to the
worker's end, layers published.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def measure(image_name: str = "coffee", max_size: int | None = None, repeat: int = 3,
            threads: int = 0) -> dict:
    """Median seconds of a widget run and of the same library call, alternated
    ``repeat`` times after one warm-up of each; the widget's last status line."""
    import napari
    import skimage.data
    import torch
    from qtpy.QtCore import QEventLoop
    from qtpy.QtWidgets import QApplication

    from napari.qt.threading import create_worker

    from napari_iem import segment
    from napari_iem._napari.run_request import plan_run
    from napari_iem._napari.widget import IEMWidget

    from napari_iem._napari import remembered

    if threads:
        torch.set_num_threads(threads)
    # a fresh widget, as a new user opens it: not the settings a last session left
    os.environ[remembered.ENV] = os.path.join(tempfile.mkdtemp(), "settings.toml")
    image = getattr(skimage.data, image_name)()
    viewer = napari.Viewer(show=True)
    widget = IEMWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.add_image(image, name=image_name, rgb=image.ndim == 3)
    if max_size is not None:
        widget.controls["max_size"].value = max_size
    app = QApplication.instance()

    def widget_run() -> float:
        # Qt's own event loop, as in napari (a loop polling processEvents would hold
        # the interpreter lock the engine's thread needs, and slow it)
        loop = QEventLoop()
        start = time.perf_counter()
        widget.run_button.click()
        widget.worker.finished.connect(loop.quit)
        if widget.running:
            loop.exec()
        app.processEvents()  # the layers published
        return time.perf_counter() - start

    def library_run() -> float:
        # in a worker of napari's thread pool, as the widget's engine runs: torch keeps
        # a team of threads per thread that called it, and two such teams on two
        # cores slow each other twofold (the library call on the main thread after a
        # widget run: 1.15 s against 0.60 s in a process of its own)
        plan = plan_run(widget.form, viewer)
        options = {**plan.options, "preset": widget.controls["preset"].value}
        seconds = []

        def call():
            start = time.perf_counter()
            segment(plan.data, **options)
            seconds.append(time.perf_counter() - start)

        worker = create_worker(call, _start_thread=False)
        loop = QEventLoop()
        worker.finished.connect(loop.quit)
        worker.start()
        loop.exec()
        return seconds[0]

    widget_run(), library_run()  # warm both (imports, first kernels, layer creation)
    times = {"widget": [], "library": []}
    for _ in range(repeat):
        times["widget"].append(widget_run())
        times["library"].append(library_run())
    out = {k: statistics.median(times[k]) for k in ("widget", "library")}
    out.update(shape=image.shape, status=widget.status.text(),
               max_size=widget.controls["max_size"].value)
    viewer.close()
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-size", type=int, default=None,
                        help="the widget's working size (0: full size; default: the "
                        "widget's own start)")
    parser.add_argument("--image", default="coffee", help="a skimage.data image name")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all)")
    args = parser.parse_args(argv)
    out = measure(args.image, args.max_size, args.repeat, args.threads)
    w, lib = out["widget"], out["library"]
    print("| image | max side | widget s | library s | widget / library |")
    print("|---|---|---|---|---|")
    print(f"| {args.image} {out['shape']} | {out['max_size'] or 'full'} | {w:.2f} | "
          f"{lib:.2f} | {w / lib:.2f}x |")
    print("status:", out["status"])


if __name__ == "__main__":
    main()
