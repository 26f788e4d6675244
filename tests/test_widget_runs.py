"""What a run shows while it goes and after: the preview's own look, honest progress,
status lines, results that are not published, Cancel in every phase (pytest-xvfb)."""
import threading
import time

import numpy as np
import pytest
from napari.utils import progress

from napari_iem._napari import widget as _widget
from napari_iem._napari.publish import PREVIEW_CONTOUR
from napari_iem._napari.sample_data import textured_disc
from napari_iem.api import iter_segment

pytestmark = pytest.mark.gui
TIMEOUT_MS = 60_000
SIZE = 48


def lingering(release: threading.Event | None = None, pause: float = 0.05):
    """The real engine, each step slowed down, and (with ``release``) held after the
    last step, as in a long finishing phase, until ``release`` is set."""
    def engine(*args, **kwargs):
        gen = iter_segment(*args, **kwargs)
        while True:
            try:
                snapshot = next(gen)
            except StopIteration as stop:
                if release is not None:
                    release.wait(TIMEOUT_MS / 1000)
                return stop.value
            time.sleep(pause)  # spare the CPU; no timing is asserted
            yield snapshot
    return engine


def wait(qtbot, widget):
    qtbot.waitUntil(lambda: not widget.running, timeout=TIMEOUT_MS)


def test_preview_has_its_own_look_and_goes_at_the_end(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    monkeypatch.setattr(_widget, "iter_segment", lingering())
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.run_button.click()
    wait(qtbot, widget)  # a first result, that the rerun's preview is drawn over
    result = viewer.layers["disc IEM"]
    seen = {}

    def look(_snapshot):
        if "disc IEM preview" in viewer.layers and not seen:
            preview = viewer.layers["disc IEM preview"]
            seen.update(contour=preview.contour, opacity=preview.opacity,
                        colors=preview.colormap.color_dict)
            seen["bars"] = [bar.desc for bar in progress._all_instances]

    widget.run_button.click()
    widget.worker.yielded.connect(look)
    wait(qtbot, widget)
    assert seen["contour"] == PREVIEW_CONTOUR and result.contour == 0
    assert seen["colors"] != result.colormap.color_dict
    assert any(desc.startswith("IEM: disc") for desc in seen["bars"])  # the activity dock
    assert "disc IEM preview" not in viewer.layers


def test_a_quick_run_draws_no_bar_and_no_preview(viewer_widget, qtbot, monkeypatch):
    """A run that ends before its bar is due gets neither bar nor preview (drawing
    them would slow it), and its layers come as always."""
    from napari_iem._napari import progress as _progress

    monkeypatch.setattr(_progress, "BAR_DELAY_SECONDS", 3600.0)
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    added = []
    viewer.layers.events.inserted.connect(lambda event: added.append(event.value.name))
    widget.run_button.click()
    wait(qtbot, widget)
    assert widget._progress.bar is None
    assert "disc IEM" in added and "disc IEM preview" not in added
    assert "iterations" in widget.status.text()


def watch_bar(widget, monkeypatch):
    """The optimiser's snapshots, and the activity-dock bar's (value, total) after
    each snapshot the widget showed once the bar exists, for the next run.  The slot
    is connected after the widget's own and before the worker starts (connected after
    the click, a busy machine's first snapshots would be missed)."""
    steps, bar = [], []

    def seen(snapshot):
        if snapshot.phase == "optimising":
            steps.append(snapshot)
        if widget._progress.bar is not None:
            bar.append((widget._progress.bar.n, widget._progress.bar.total))

    set_running = widget._set_running

    def connect_then(running):
        if running:
            widget.worker.yielded.connect(seen)
        set_running(running)

    monkeypatch.setattr(widget, "_set_running", connect_then)
    return steps, bar


def test_progress_totals_equal_the_work_done(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    steps, bar = watch_bar(widget, monkeypatch)
    widget.run_button.click()
    wait(qtbot, widget)
    assert len({total for _, total in bar}) == 1  # known from the first snapshot
    assert bar[-1][0] == bar[-1][1]  # and reached exactly
    info = viewer.layers["disc IEM"].metadata["iem"]
    assert len(steps) == info["iterations"]
    assert f"{len(steps)} iterations" in widget.status.text()


def test_progress_of_a_stack_counts_every_step(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    planes = [textured_disc(SIZE, seed=s) for s in range(3)]
    viewer.add_image(np.stack(planes), name="movie")
    widget.mode.value = "every slice"
    steps, bar = watch_bar(widget, monkeypatch)
    widget.run_button.click()
    wait(qtbot, widget)
    assert len({total for _, total in bar}) == 1  # one bar, its total known up front
    assert [n for n, _ in bar] == sorted(n for n, _ in bar)
    assert bar[-1][0] == bar[-1][1]  # ends exactly on it
    status = widget.status.text()
    assert "3 planes" in status and f"{len(steps)} iterations" in status


def test_status_says_when_a_run_did_not_converge(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.controls["max_iter"].value = 1
    widget.run_button.click()
    wait(qtbot, widget)
    assert viewer.layers["disc IEM"].metadata["iem"]["converged"] is False
    assert viewer.layers["disc IEM"].metadata["iem"]["stopped_at_cap"] is True
    assert ("stopped at 1 iterations without converging: raise max iterations or lower "
            "max size") in widget.status.text()


def test_status_says_when_a_run_ended_in_a_cycle(viewer_widget, qtbot):
    """A contour that alternates for ever is not told to raise the iterations."""
    import torch

    viewer, widget = viewer_widget
    noise = torch.rand(2, 40, 40, 3, generator=torch.Generator().manual_seed(3)).numpy()
    viewer.add_image(noise[1], name="noise", rgb=True)  # the paper preset cycles at 8
    widget.controls["preset"].value = "paper"
    widget.run_button.click()
    wait(qtbot, widget)
    info = viewer.layers["noise IEM"].metadata["iem"]
    assert info["converged"] is False and info["stopped_at_cap"] is False
    assert "ended in a cycle" in widget.status.text()
    assert "raise max iterations" not in widget.status.text()


def test_defaults_pick_is_shown_and_the_other_is_one_click(viewer_widget, qtbot):
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")  # grey float: a micrograph
    widget.run_button.click()
    wait(qtbot, widget)
    info = viewer.layers["disc IEM"].metadata["iem"]
    assert info["preset"] == "microscopy" and info["picked"]["by"] == "default"
    assert "preset 'microscopy' (default's pick:" in widget.status.text()
    assert widget.other_button.isVisibleTo(widget)
    assert widget.other_button.text() == "Run again as photo"
    widget.other_button.click()
    wait(qtbot, widget)
    assert viewer.layers["disc IEM"].metadata["iem"]["preset"] == "photo"
    assert not widget.other_button.isVisibleTo(widget)  # photo was chosen, not picked


def test_the_other_pick_goes_when_another_image_is_chosen(viewer_widget, qtbot):
    """"Run again as ..." is the same run with the other pick: once another image is
    chosen it would run that one, so it is hidden."""
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.run_button.click()
    wait(qtbot, widget)
    assert widget.other_button.isVisibleTo(widget)
    widget.image.value = viewer.add_image(textured_disc(SIZE, seed=3), name="other")
    assert not widget.other_button.isVisibleTo(widget)


def test_the_other_pick_is_not_offered_for_an_image_chosen_during_the_run(
        viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    release = threading.Event()
    monkeypatch.setattr(_widget, "iter_segment", lingering(release))
    viewer.add_image(textured_disc(SIZE), name="disc")
    other = viewer.add_image(textured_disc(SIZE, seed=3), name="other")
    widget.image.value = viewer.layers["disc"]
    widget.run_button.click()
    widget.image.value = other
    release.set()
    wait(qtbot, widget)
    assert "disc IEM" in viewer.layers and not widget.other_button.isVisibleTo(widget)


@pytest.mark.parametrize("change", ["remove", "reshape", "replace"])
def test_a_result_whose_source_went_is_not_published(viewer_widget, qtbot, monkeypatch,
                                                     errors, change):
    """Nor one whose image got other data of the same shape: its labels are of an
    image no longer there."""
    viewer, widget = viewer_widget
    release = threading.Event()
    monkeypatch.setattr(_widget, "iter_segment", lingering(release))
    source = viewer.add_image(textured_disc(SIZE), name="disc")
    widget.run_button.click()
    if change == "remove":
        viewer.layers.remove(source)
    elif change == "reshape":
        source.data = textured_disc(SIZE + 8)
    else:
        source.data = textured_disc(SIZE, seed=5)
    release.set()
    wait(qtbot, widget)
    assert [la.name for la in viewer.layers if "IEM" in la.name] == []
    assert len(errors) == 1 and "nothing was written" in errors[0]
    assert {"remove": "removed", "reshape": "changed shape",
            "replace": "new data"}[change] in widget.status.text()


def test_cancel_while_finishing_changes_nothing(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    release = threading.Event()
    monkeypatch.setattr(_widget, "iter_segment", lingering(release))
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.run_button.click()
    qtbot.waitUntil(lambda: "disc IEM preview" in viewer.layers, timeout=TIMEOUT_MS)
    widget.run_button.click()  # Cancel, while the engine is past its last step
    release.set()
    wait(qtbot, widget)
    assert [la.name for la in viewer.layers] == ["disc"]
    assert widget.status.text() == "cancelled: nothing was changed"


def test_closing_the_dock_stops_its_run(viewer_widget, qtbot, monkeypatch, errors):
    """The dock's close button takes the widget out of the window: its run stops and
    publishes nothing, rather than adding a layer from a panel no one sees."""
    viewer, widget = viewer_widget
    release = threading.Event()
    monkeypatch.setattr(_widget, "iter_segment", lingering(release))
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.run_button.click()
    viewer.window.remove_dock_widget("all")  # what the dock's close button does
    release.set()
    wait(qtbot, widget)
    assert [la.name for la in viewer.layers] == ["disc"] and errors == []


def test_refine_with_locks_keeps_every_locked_pixel(viewer_widget, qtbot):
    """Locks are the engine's (nothing in the widget restores them): with clean-up on
    and a coarse working size, every painted pixel keeps its painted value."""
    viewer, widget = viewer_widget
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.controls["min_piece_size"].value = 30
    widget.run_button.click()
    wait(qtbot, widget)
    labels = viewer.layers["disc IEM"]
    painted = labels.data.copy()
    painted[2:5, 2:5] = 1  # a speck below min piece size: clean-up would drop it
    painted[20:23, 20:23] = 1 - painted[20:23, 20:23]
    labels.data = painted
    locked = painted != labels.metadata["iem_written"]
    widget.refine_button.click()
    wait(qtbot, widget)
    np.testing.assert_array_equal(labels.data[locked], painted[locked])


def test_cancel_from_the_activity_dock(viewer_widget, qtbot, monkeypatch):
    viewer, widget = viewer_widget
    monkeypatch.setattr(_widget, "iter_segment", lingering(pause=0.2))
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.run_button.click()
    widget._progress.bar.cancel()  # the bar's own cancel button in the activity dock
    wait(qtbot, widget)
    assert [la.name for la in viewer.layers] == ["disc"]
    assert widget.status.text() == "cancelled: nothing was changed"


def test_a_memory_refusal_names_the_widgets_controls(viewer_widget, qtbot, monkeypatch,
                                                      errors):
    """The engine's advice reached the widget in the API's words (max_size=512,
    refine=True, mode='slices', maps=False)."""
    from napari_iem.engine import memory

    viewer, widget = viewer_widget
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2**16)
    viewer.add_image(textured_disc(SIZE), name="disc")
    widget.form.show_why.value = True
    widget.run_button.click()
    wait(qtbot, widget)
    text = widget.status.text()
    assert text.startswith("IEM on an input of shape 48x48 needs about"), text
    assert "'max size (px)' 512" in text and "'refine edges at full size' on" in text, text
    assert "'show why' off" in text and "=" not in text, text
